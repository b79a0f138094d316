package postgres

// exampleDSN is the database the examples use: the tests' server.
var exampleDSN string
