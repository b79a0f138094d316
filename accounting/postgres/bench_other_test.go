//go:build !unix

package postgres

func closeBench() {}
