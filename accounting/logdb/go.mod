module github.com/annuaire/tracker/accounting/logdb

go 1.26.0

require (
	github.com/annuaire/tracker v0.0.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/google/btree v1.1.3 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace github.com/annuaire/tracker => ../..
