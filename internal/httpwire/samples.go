package httpwire

import (
	_ "embed"
	"strings"
)

//go:embed testdata/client-queries.txt
var clientQueries string

// ClientQueries returns announce queries as real clients send them
// (libtorrent, qBittorrent, Transmission, aria2, µTorrent, anacrolix) and
// a few malformed ones: the seeds of the fuzz targets of the parsers and of
// the front-end.
func ClientQueries() []string {
	var qs []string
	for _, line := range strings.SplitAfter(clientQueries, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			qs = append(qs, strings.TrimSuffix(line, "\n"))
		}
	}
	return qs
}
