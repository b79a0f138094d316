"""One libtorrent session for the interop tests of annuaire.

Run with Debian's /usr/bin/python3 and its python3-libtorrent. The only
argument is a JSON object:

  role        "seed", "leech", "scrape" or "make"
  torrent     path of the .torrent file (seed, leech, scrape)
  save        the save path: holds the content when seeding
  listen      listen_interfaces, for example "127.0.0.1:0"
  ssrf        libtorrent's ssrf_mitigation setting
  encryption  "", "disabled" or "required"
  reannounce  seconds between forced re-announces while the session has no
              peer; 0 leaves announcing to libtorrent

Role "make" writes a torrent instead: keys path (the content file), out,
announce, private, hybrid, piece_size.

Events go to stdout, one JSON object a line, with "ev" naming the event; a
readable log goes to stderr. Commands come on stdin, one a line: "scrape",
"reannounce", "quit". End of input means quit, so the session never outlives
the program that started it.
"""

import json
import os
import queue
import sys
import threading
import time

import libtorrent as lt

T0 = time.monotonic()

# tracker_announce_alert.event: 0 none, 1 completed, 2 started, 3 stopped,
# 4 paused.
STOPPED = 3

# The session's own listen ports.
OWN_PORTS = set()


def now():
    return time.monotonic() - T0


def emit(ev, **kw):
    kw["ev"] = ev
    kw["t"] = round(now(), 3)
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write("%8.3f %s\n" % (now(), msg))
    sys.stderr.flush()


def make(cfg):
    fs = lt.file_storage()
    lt.add_files(fs, cfg["path"])
    flags = 0 if cfg.get("hybrid") else lt.create_torrent.v1_only
    ct = lt.create_torrent(fs, cfg.get("piece_size", 0), flags)
    ct.add_tracker(cfg["announce"])
    ct.set_priv(bool(cfg.get("private")))
    ct.set_creator("annuaire interop")
    lt.set_piece_hashes(ct, os.path.dirname(cfg["path"]))
    with open(cfg["out"], "wb") as f:
        f.write(lt.bencode(ct.generate()))


def read_commands(q):
    for line in sys.stdin:
        q.put(line.strip())
    q.put("quit")


def endpoint(ep):
    host, port = ep[0], ep[1]
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


def text(s):
    if isinstance(s, bytes):
        return s.decode("utf-8", "replace")
    return s or ""


def run(cfg):
    role = cfg["role"]
    cats = lt.alert.category_t
    mask = (cats.error_notification | cats.status_notification
            | cats.tracker_notification | cats.connect_notification
            | cats.peer_notification | cats.storage_notification
            | cats.ip_block_notification | cats.performance_warning)
    enc = cfg.get("encryption", "")
    # Policies: 0 forced, 1 enabled, 2 disabled. Levels: 1 plaintext, 2 rc4,
    # 3 both.
    policy, level = 1, 3
    if enc == "disabled":
        policy, level = 2, 1
    elif enc == "required":
        policy, level = 0, 2
    settings = {
        "listen_interfaces": cfg["listen"],
        "outgoing_interfaces": "",
        # Peers come from the tracker only.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "dht_bootstrap_nodes": "",
        # TCP only: one transport makes runs on a loaded machine repeatable.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "announce_to_all_tiers": True,
        "announce_to_all_trackers": True,
        # Both sides of a test share 127.0.0.1.
        "allow_multiple_connections_per_ip": True,
        "ssrf_mitigation": bool(cfg.get("ssrf", True)),
        # Take the tracker's interval as it is, down to a second (the
        # default floor is 300 s), and retry failures without a long
        # backoff: a test tracker may ask for short intervals.
        "min_announce_interval": 1,
        "tracker_backoff": 100,
        "tracker_receive_timeout": 10,
        "tracker_completion_timeout": 20,
        "stop_tracker_timeout": 3,
        # Dial a peer again a second after a failed attempt, not a minute.
        "min_reconnect_time": 1,
        # Unchoke an interested peer soon, not up to 15 s later.
        "unchoke_interval": 1,
        "peer_connect_timeout": 7,
        "out_enc_policy": policy,
        "in_enc_policy": policy,
        "allowed_enc_level": level,
        "alert_mask": int(mask),
    }
    # flags=0: no default plugins, so no ut_pex (nor ut_metadata, which a
    # session with a .torrent file does not need).
    ses = lt.session(settings, flags=0)

    ti = lt.torrent_info(cfg["torrent"])
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = cfg["save"]
    tf = lt.torrent_flags
    flags = tf.disable_dht | tf.disable_lsd | tf.disable_pex
    if role == "scrape":
        flags |= tf.paused
    atp.flags = flags
    h = ses.add_torrent(atp)
    ih = ti.info_hashes()
    versions = int(ih.has_v1()) + int(ih.has_v2())
    emit("added", v1=str(ih.v1) if ih.has_v1() else "",
         v2=str(ih.v2) if ih.has_v2() else "", name=ti.name())
    log("added %s as %s: trackers %s"
        % (ti.name(), role, [t["url"] for t in h.trackers()]))

    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,),
                     daemon=True).start()

    every = float(cfg.get("reannounce", 0))
    last_reannounce = now()
    last_status = 0.0
    last_line = ""
    while True:
        quitting = False
        while True:
            try:
                cmd = commands.get_nowait()
            except queue.Empty:
                break
            if cmd == "scrape":
                log("scrape requested")
                h.scrape_tracker()
            elif cmd == "reannounce":
                h.force_reannounce(
                    0, -1, lt.reannounce_flags_t.ignore_min_interval)
            elif cmd == "quit":
                quitting = True
        if quitting:
            break

        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            handle_alert(a)

        t = now()
        if t - last_status >= 1:
            last_status = t
            st = h.status()
            line = "status %s progress %.3f peers %d seeds %d up %d down %d" % (
                st.state, st.progress, st.num_peers, st.num_seeds,
                st.total_payload_upload, st.total_payload_download)
            if line != last_line:
                log(line)
                last_line = line
            emit("status", state=str(st.state), progress=st.progress,
                 peers=st.num_peers, seeding=st.is_seeding,
                 uploaded=st.total_payload_upload,
                 downloaded=st.total_payload_download)
            if (role != "scrape" and every > 0 and st.num_peers == 0
                    and t - last_reannounce >= every):
                last_reannounce = t
                h.force_reannounce(
                    0, -1, lt.reannounce_flags_t.ignore_min_interval)

    log("stopping")
    # The counters the stopped announce reports.
    st = h.status()
    emit("status", state=str(st.state), progress=st.progress,
         peers=st.num_peers, seeding=st.is_seeding,
         uploaded=st.total_payload_upload,
         downloaded=st.total_payload_download)
    # Pausing sends the stopped announce; waiting for its answer here
    # keeps the session's destructor from waiting stop_tracker_timeout.
    # One answer per tracker and per protocol version (a hybrid torrent
    # announces its v1 and its v2 hash). Answers to an announce still in
    # flight, such as completed, do not count.
    expected = 0 if role == "scrape" else len(h.trackers()) * versions
    h.pause()
    start = now()
    sent = answered = 0
    while answered < expected and now() < start + 5:
        if sent == 0 and now() > start + 1:
            break  # left to the session's destructor
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            handle_alert(a)
            if (isinstance(a, lt.tracker_announce_alert)
                    and int(a.event) == STOPPED):
                sent += 1
            elif sent and isinstance(a, (lt.tracker_reply_alert,
                                         lt.tracker_error_alert)):
                answered += 1
    if expected:
        log("%d stopped announces sent, %d answered" % (sent, answered))
    del ses
    emit("exit")


def handle_alert(a):
    msg = a.message()
    quiet = False  # kept out of the log
    if isinstance(a, lt.listen_succeeded_alert):
        if a.socket_type == lt.socket_type_t.tcp:
            OWN_PORTS.add(a.port)
            emit("listen", addr=endpoint((str(a.address), a.port)))
    elif isinstance(a, lt.listen_failed_alert):
        emit("fatal", msg="listen failed: " + msg)
    elif isinstance(a, lt.tracker_announce_alert):
        emit("announce", url=a.tracker_url(), event=int(a.event))
    elif isinstance(a, lt.tracker_reply_alert):
        emit("reply", url=a.tracker_url(), num_peers=a.num_peers)
    elif isinstance(a, lt.tracker_warning_alert):
        emit("warning", url=a.tracker_url(), msg=text(a.warning_message())
             if hasattr(a, "warning_message") else msg)
    elif isinstance(a, lt.tracker_error_alert):
        emit("tracker_error", url=a.tracker_url(),
             reason=text(a.failure_reason()), error=a.error.message(),
             times=a.times_in_row, msg=msg)
    elif isinstance(a, lt.scrape_reply_alert):
        emit("scrape", url=a.tracker_url(), complete=a.complete,
             incomplete=a.incomplete)
    elif isinstance(a, lt.scrape_failed_alert):
        emit("scrape_failed", url=a.tracker_url(),
             error=text(a.error_message()), msg=msg)
    elif isinstance(a, lt.torrent_finished_alert):
        emit("finished")
    elif isinstance(a, lt.state_changed_alert):
        if a.state == lt.torrent_status.seeding:
            emit("seeding")
    elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
        emit("fatal", msg=msg)
    elif isinstance(a, lt.peer_connect_alert):
        outgoing = "outgoing" in msg
        emit("peer", addr=endpoint(a.endpoint), outgoing=outgoing)
        # A tracker that hands a session its own address back makes it
        # connect to itself again and again: keep that out of the log,
        # and incoming connections too until they end.
        quiet = not outgoing or a.endpoint[1] in OWN_PORTS
    elif isinstance(a, lt.peer_disconnected_alert):
        quiet = ("connected to ourselves" in msg
                 or a.endpoint[1] in OWN_PORTS)
    elif isinstance(a, lt.incoming_connection_alert):
        quiet = True
    if not quiet:
        log("alert %s: %s" % (type(a).__name__, msg))


def main():
    cfg = json.loads(sys.argv[1])
    if cfg["role"] == "make":
        make(cfg)
        return
    try:
        run(cfg)
    except Exception as e:  # reported, then the exit status says it failed
        emit("fatal", msg="%s: %s" % (type(e).__name__, e))
        raise


if __name__ == "__main__":
    main()
