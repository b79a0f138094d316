// Package connid makes and checks the connection ids of the UDP tracker
// protocol (BEP 15) without keeping any state per client.
//
// An id is 8 bytes: a 4-byte timestamp (Unix seconds, big-endian) and a
// 4-byte tag, a keyed MAC of the timestamp and the client's address. A
// client that can read replies at an address gets ids for that address
// only; nobody without the key can make one. Servers that share the key
// accept each other's ids.
//
// The MAC is CBC-MAC with AES-128 over exactly two blocks: the client's
// address as 16 bytes (IPv4 addresses in their IPv4-mapped form), then the
// timestamp padded with zeros:
//
//	tag = first 4 bytes of AES_k(AES_k(addr) XOR (ts || 0^12))
//
// CBC-MAC is a secure pseudorandom function on messages of one fixed length
// (Bellare, Kilian and Rogaway), and every message here is two blocks long;
// its known weakness, extending a message by another block, needs messages
// of different lengths. Truncating a PRF's output keeps it a PRF, so
// guessing a tag succeeds with probability 2^-32 per try. AES runs in
// hardware on common processors, so an id costs two block encryptions: a
// few tens of nanoseconds, with no allocation.
package connid

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Lifetime is how long an id is accepted after it was issued. BEP 15 has
// clients use an id for at most a minute and trackers accept it for two.
const Lifetime = 120 * time.Second

// MaxSkew is how far in the future an id's timestamp may be, for servers
// that share a key but whose clocks differ slightly.
const MaxSkew = 10 * time.Second

// MinKeyLen is the shortest key New accepts.
const MinKeyLen = 16

// Codec issues and checks ids. It holds scratch space, so it is not safe
// for concurrent use: give each goroutine its own, with Clone.
type Codec struct {
	block cipher.Block
	// buf is scratch for the cipher; it lives in the Codec so that passing
	// it to the cipher, behind an interface, costs no allocation.
	buf [2 * aes.BlockSize]byte
}

// New returns a Codec keyed with key, which holds at least MinKeyLen bytes
// of secret; it is hashed down to an AES-128 key. If key is nil, New draws
// a random key.
func New(key []byte) (*Codec, error) {
	var k [16]byte
	switch {
	case key == nil:
		rand.Read(k[:])
	case len(key) < MinKeyLen:
		return nil, errors.New("connid: key shorter than 16 bytes")
	default:
		sum := sha256.Sum256(key)
		copy(k[:], sum[:])
	}
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	return &Codec{block: block}, nil
}

// Clone returns a Codec with the same key and its own scratch space.
func (c *Codec) Clone() *Codec {
	return &Codec{block: c.block}
}

// Issue returns an id for a client at addr at time now.
func (c *Codec) Issue(now time.Time, addr netip.Addr) uint64 {
	ts := uint32(now.Unix())
	return uint64(ts)<<32 | uint64(c.tag(ts, addr))
}

// Check reports whether id was issued to addr less than Lifetime before
// now (and not more than MaxSkew after it). The tag is compared in
// constant time.
func (c *Codec) Check(now time.Time, addr netip.Addr, id uint64) bool {
	ts := uint32(id >> 32)
	age := int64(int32(uint32(now.Unix()) - ts)) // wraps correctly across 2106
	if age >= int64(Lifetime/time.Second) || age < -int64(MaxSkew/time.Second) {
		return false
	}
	return subtle.ConstantTimeEq(int32(c.tag(ts, addr)), int32(uint32(id))) == 1
}

func (c *Codec) tag(ts uint32, addr netip.Addr) uint32 {
	in := (*[aes.BlockSize]byte)(c.buf[aes.BlockSize:])
	*in = addr.Unmap().As16() // the zone, if any, plays no part
	b := c.buf[:aes.BlockSize]
	c.block.Encrypt(b, in[:])
	binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)^ts)
	c.block.Encrypt(b, b)
	return binary.BigEndian.Uint32(b)
}
