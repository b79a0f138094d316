module github.com/annuaire/tracker

go 1.26.0

require (
	github.com/google/btree v1.1.3
	github.com/zeebo/bencode v1.0.0
	golang.org/x/sys v0.50.0
	golang.org/x/time v0.16.0
)
