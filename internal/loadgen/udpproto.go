package loadgen

import "github.com/annuaire/tracker/internal/udpwire"

// appendUDPAnnounce appends the announce of request r.
func (w *Workload) appendUDPAnnounce(b []byte, connID uint64, tid uint32, r request) []byte {
	downloaded, left, uploaded := w.transfer(r)
	numwant := int32(-1)
	if w.NumWant > 0 {
		numwant = int32(w.NumWant)
	}
	var urlData []byte
	if w.Passkeys {
		var ud [len(announcePath) + passkeyLen]byte
		urlData = w.appendPasskey(append(ud[:0], announcePath...), r.peer)
	}
	return udpwire.AppendAnnounceRequest(b, &udpwire.Announce{
		ConnID:     connID,
		TxID:       tid,
		InfoHash:   w.InfoHash(r.swarm),
		PeerID:     w.PeerID(r.peer),
		Downloaded: uint64(downloaded),
		Left:       uint64(left),
		Uploaded:   uint64(uploaded),
		Event:      r.event,
		Key:        w.Key(r.peer),
		NumWant:    numwant,
		Port:       w.port(r),
		URLData:    urlData,
	}) // IP 0: the packet's source address is the peer's
}

// announcePath starts the URL data of a UDP announce with a passkey.
const announcePath = "/announce/"

// appendUDPScrape appends a scrape of ScrapeHashes swarms from r.swarm on.
func (w *Workload) appendUDPScrape(b []byte, connID uint64, tid uint32, r request) []byte {
	b = udpwire.AppendHeader(b, udpwire.Header{ConnID: connID, Action: udpwire.ActionScrape, TxID: tid})
	for k := range w.ScrapeHashes {
		h := w.InfoHash(w.scrapeSwarm(r.swarm, k))
		b = append(b, h[:]...)
	}
	return b
}

// outcome classifies a reply.
type outcome uint8

const (
	outOK        outcome = iota // a valid reply
	outFailure                  // a valid refusal: a UDP error packet or an HTTP failure reason
	outMalformed                // anything else
)

// checkUDPReply checks reply p to a request of the given action, whose
// transaction id the caller has already matched: an error reply of at
// least 8 bytes is a refusal, and any other reply must be of the action
// asked and of the exact length its contents make. peerLen is the size of
// a peer (udpwire.Peer4Len or Peer6Len); hashes is the number of hashes
// scraped.
func checkUDPReply(p []byte, action uint32, peerLen, hashes int) outcome {
	h, ok := udpwire.ParseReplyHeader(p)
	switch {
	case !ok:
		return outMalformed
	case h.Action == udpwire.ActionError:
		return outFailure
	}
	var err error
	switch action {
	case udpwire.ActionConnect:
		_, err = udpwire.ParseConnectReply(p)
	case udpwire.ActionAnnounce:
		_, err = udpwire.ParseAnnounceReply(p, peerLen)
	case udpwire.ActionScrape:
		var r udpwire.ScrapeReply
		if r, err = udpwire.ParseScrapeReply(p); err == nil && r.N() != hashes {
			return outMalformed
		}
	}
	if err != nil {
		return outMalformed
	}
	return outOK
}
