// Package accounting keeps the ratio accounting of a private tracker:
// every member's uploaded and downloaded bytes, per torrent and in total,
// snatches and seed time, with the site's factors (freeleech, neutral
// torrents, double upload) applied. It loses no byte across crashes and
// counts none twice across retries and replays.
//
// # How it works
//
// Clients report cumulative counters per session: uploaded and downloaded
// since the client started the torrent. The tracker hands every announce of
// an identified user to a [Ledger] (a [tracker.Accounting]), which records
// it, with the factors in force at that moment, in a bounded buffer. A
// flusher applies the buffer to a [Backend] in batches, one transaction
// each, and the backend turns reported counters into credits against the
// durable baseline of each (user, torrent, peer id) in that same
// transaction (see [Credit] for the rule). So:
//
//   - a batch applied twice changes nothing the second time, since its
//     counters then equal the baselines;
//   - a crash loses nothing a client will report again: counters are
//     cumulative, and the next announce carries everything since the last
//     durable one;
//   - what a client will not report again, the last counters of a session
//     (event stopped), a completion (event completed) and the start of a
//     new session (event started), is durable before the client gets its
//     reply: those announces wait for the flush that holds them, and one
//     flush (one transaction, one fsync) serves every announce waiting in
//     it;
//   - several tracker instances may share one backend (PostgreSQL): each
//     transaction reads the baselines it changes.
//
// While the backend is down or slow, announces are still answered: records
// wait in the buffer, then in a local spool file, and are applied once the
// backend is back. The backlog is reported by [Ledger.Stats].
//
// # The site's side
//
// Users (passkeys, permission to leech, personal factors) and torrents
// (registration, factors, deletion with a reason clients show) are rows of
// the backend. The Ledger keeps them in memory and is the tracker's
// [tracker.PasskeyValidator] and [tracker.TorrentFilter]. A site embedding
// the library changes them through the Ledger's methods; a site running the
// standalone server through the admin API ([NewAdminHandler]). Changes
// apply to the next announce.
package accounting
