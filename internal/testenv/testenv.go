// Package testenv holds what the tests, the demo's test and the benchmarks share about the local
// databases: where to find them, and whether one that cannot be reached may be skipped.
package testenv

import (
	"os"
	"strings"
)

// Local defaults for the servers optlock is developed against; OPTLOCK_POSTGRES_DSN and
// OPTLOCK_MYSQL_DSN override them.
const (
	DefaultPostgresDSN = "host=127.0.0.1 port=5432 user=root dbname=test sslmode=disable"
	DefaultMySQLDSN    = "root:@tcp(127.0.0.1:3306)/test?charset=utf8mb4&parseTime=True&loc=Local"
)

// PostgresDSN returns OPTLOCK_POSTGRES_DSN, or the local default.
func PostgresDSN() string { return envOr("OPTLOCK_POSTGRES_DSN", DefaultPostgresDSN) }

// MySQLDSN returns OPTLOCK_MYSQL_DSN, or the local default.
func MySQLDSN() string { return envOr("OPTLOCK_MYSQL_DSN", DefaultMySQLDSN) }

// SQLiteDSN is a SQLite file at path, set up for concurrent writers: WAL, a busy timeout, and
// transactions that take the write lock when they begin.
func SQLiteDSN(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
}

// Required says whether an unreachable server fails the run instead of being skipped: always under
// CI=true, or when OPTLOCK_REQUIRE_DBS names it ("postgres,mysql") or is "all".
func Required(name string) bool {
	if os.Getenv("CI") == "true" {
		return true
	}
	req := os.Getenv("OPTLOCK_REQUIRE_DBS")
	return req == "all" || strings.Contains(req, name)
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}
