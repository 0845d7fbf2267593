package tests

// PgBouncer in transaction-pooling mode between the writers and PostgreSQL (scripts/pgbouncer.sh):
// a server connection belongs to a client for one transaction only, so nothing may rely on session
// state between transactions, and named prepared statements do not survive (pgx must run with the
// simple protocol or an exec mode, as people run it behind PgBouncer).
//
//	scripts/pgbouncer.sh start && eval "$(scripts/pgbouncer.sh env)"   # OPTLOCK_PGBOUNCER_DSN
//	go test -run TestFaultPgBouncer -v .
//
// The DSN must reach, through PgBouncer, the same database as OPTLOCK_POSTGRES_DSN: the final state is
// read there, directly, through a pool of its own.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock/internal/testenv"
)

const faultPgBouncerHow = `start it with scripts/pgbouncer.sh start and eval "$(scripts/pgbouncer.sh env)"`

// faultOpenPG opens dsn through pgx with database/sql pool limits fit for the writers.
func faultOpenPG(t *testing.T, dsn string) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn), scaleGormConfig())
	require.NoError(t, err)
	scaleClose(t, db)
	conn, err := db.DB()
	require.NoError(t, err)
	conn.SetMaxOpenConns(32)
	return db
}

// faultWhere names the server and database a connection reaches.
func faultWhere(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var where string
	require.NoError(t, db.Raw("SELECT current_database() || '@' || inet_server_port()").Scan(&where).Error)
	return where
}

func TestFaultPgBouncerTransactionPooling(t *testing.T) {
	dsn := os.Getenv("OPTLOCK_PGBOUNCER_DSN")
	if dsn == "" {
		scaleUnavailable(t, "PgBouncer tests: OPTLOCK_PGBOUNCER_DSN is not set; to run them, %s", faultPgBouncerHow)
	}
	direct, err := gorm.Open(postgres.Open(testenv.PostgresDSN()), scaleGormConfig())
	if err == nil {
		err = direct.Exec("SELECT 1").Error
	}
	if err != nil {
		scaleUnavailable(t, "PgBouncer tests: the server behind it (OPTLOCK_POSTGRES_DSN) is unreachable: %v", err)
	}
	scaleClose(t, direct)

	// How people run pgx behind a transaction pooler: no named prepared statements.
	for _, mode := range []string{"simple_protocol", "exec"} {
		t.Run(mode, func(t *testing.T) {
			pooled, err := gorm.Open(postgres.Open(dsn+" default_query_exec_mode="+mode), scaleGormConfig())
			if err == nil {
				err = pooled.Exec("SELECT 1").Error
			}
			if err != nil {
				scaleUnavailable(t, "PgBouncer at %q unreachable: %v; %s", dsn, err, faultPgBouncerHow)
			}
			scaleClose(t, pooled)
			conn, _ := pooled.DB()
			conn.SetMaxOpenConns(32)
			require.Equal(t, faultWhere(t, direct), faultWhere(t, pooled),
				"OPTLOCK_PGBOUNCER_DSN must reach the database of OPTLOCK_POSTGRES_DSN")
			var backends int
			require.NoError(t, direct.Raw("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").Scan(&backends).Error)

			initial := faultSeed(t, direct)
			faultPlugin(t, pooled)
			var log histLog
			start := time.Now()
			unread := faultWriters(context.Background(), []*gorm.DB{pooled}, 16, faultDuration(t), &log)
			elapsed := time.Since(start)

			r := histCheck(log.all(), initial, faultRead(t, direct))
			t.Logf("PgBouncer transaction pooling, pgx %s, 16 clients for %s: %s; reads that failed: %d",
				mode, elapsed.Round(time.Millisecond), r, unread)
			faultLogErrors(t, log.all())
			assert.True(t, r.ok(), "the history and the database disagree: %q", r.Contradictions)
			assert.Zero(t, r.Errors, "no fault here: every call ends in success or a conflict")
			assert.Zero(t, unread)
			assert.Positive(t, r.Acknowledged)
			assert.Positive(t, r.Conflicts, "the writers share 6 rows: some must conflict")
			stale := r.ByKind[string(faultStale)]
			assert.Equal(t, stale[histConflict], stale[histOK]+stale[histConflict]+stale[histAborted]+stale[histError],
				"every stale write in a caller's transaction is a conflict")
			for _, k := range faultKinds {
				assert.Positive(t, r.ByKind[string(k)][histOK], "%s calls succeeded", k)
			}
		})
	}
}

// faultLogErrors logs the first few distinct errors of the history.
func faultLogErrors(t *testing.T, ops []histOp) {
	t.Helper()
	seen := map[string]int{}
	var order []string
	for _, op := range ops {
		if op.Outcome != histError {
			continue
		}
		msg := op.Kind + ": " + op.Err
		if i := strings.Index(msg, " (SQLSTATE"); i > 0 {
			msg = msg[:i+16]
		}
		if seen[msg] == 0 {
			order = append(order, msg)
		}
		seen[msg]++
	}
	for i, msg := range order {
		if i == 8 {
			t.Logf("... and %d more kinds of error", len(order)-i)
			break
		}
		t.Logf("error x%d: %s", seen[msg], msg)
	}
}
