package loadgen

import "encoding/binary"

// BEP 15 constants.
const (
	udpProtocolID uint64 = 0x41727101980

	actionConnect  uint32 = 0
	actionAnnounce uint32 = 1
	actionScrape   uint32 = 2
	actionError    uint32 = 3

	udpConnectLen  = 16
	udpAnnounceLen = 98
)

// appendUDPConnect appends a connect request.
func appendUDPConnect(b []byte, tid uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, udpProtocolID)
	b = binary.BigEndian.AppendUint32(b, actionConnect)
	return binary.BigEndian.AppendUint32(b, tid)
}

// appendUDPAnnounce appends the 98-byte announce of request r.
func (w *Workload) appendUDPAnnounce(b []byte, connID uint64, tid uint32, r request) []byte {
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, actionAnnounce)
	b = binary.BigEndian.AppendUint32(b, tid)
	h := w.InfoHash(r.swarm)
	b = append(b, h[:]...)
	id := w.PeerID(r.peer)
	b = append(b, id[:]...)
	downloaded, left, uploaded := w.transfer(r.peer, r.event)
	b = binary.BigEndian.AppendUint64(b, uint64(downloaded))
	b = binary.BigEndian.AppendUint64(b, uint64(left))
	b = binary.BigEndian.AppendUint64(b, uint64(uploaded))
	b = binary.BigEndian.AppendUint32(b, r.event)
	b = binary.BigEndian.AppendUint32(b, 0) // IP: the packet's source
	b = binary.BigEndian.AppendUint32(b, w.Key(r.peer))
	numwant := int32(-1)
	if w.NumWant > 0 {
		numwant = int32(w.NumWant)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(numwant))
	return binary.BigEndian.AppendUint16(b, w.Port(r.peer))
}

// appendUDPScrape appends a scrape of ScrapeHashes swarms from r.swarm on.
func (w *Workload) appendUDPScrape(b []byte, connID uint64, tid uint32, r request) []byte {
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, actionScrape)
	b = binary.BigEndian.AppendUint32(b, tid)
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
// transaction id the caller has already matched. peerSize is 6 for
// IPv4 targets and 18 for IPv6; hashes is the number of hashes scraped.
func checkUDPReply(p []byte, action uint32, peerSize, hashes int) outcome {
	if len(p) < 8 {
		return outMalformed
	}
	got := binary.BigEndian.Uint32(p)
	if got == actionError {
		return outFailure
	}
	if got != action {
		return outMalformed
	}
	switch action {
	case actionConnect:
		if len(p) != 16 {
			return outMalformed
		}
	case actionAnnounce:
		if len(p) < 20 || (len(p)-20)%peerSize != 0 {
			return outMalformed
		}
	case actionScrape:
		if len(p) != 8+12*hashes {
			return outMalformed
		}
	}
	return outOK
}
