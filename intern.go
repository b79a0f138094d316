package tracker

// Strings for the values a front-end reads into a buffer it reuses, for
// those that go on to plug-ins, which may keep them.

// internTable returns the strings of byte slices from a bounded cache of
// the values seen lately, so that a value that comes back (a returning
// client's passkey, a client's User-Agent) costs no allocation. It is not
// safe for concurrent use: each reader of requests has its own.
type internTable struct {
	m map[string]string
}

// Bounds of an internTable: values, and the longest value kept.
const (
	maxInterned    = 4096
	maxInternedLen = 128
)

func newInternTable() *internTable {
	return &internTable{m: make(map[string]string)}
}

// intern returns b as a string that does not alias b.
func (t *internTable) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := t.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(s) > maxInternedLen {
		return s
	}
	if len(t.m) >= maxInterned {
		for k := range t.m { // map order is random: evict any one
			delete(t.m, k)
			break
		}
	}
	t.m[s] = s
	return s
}
