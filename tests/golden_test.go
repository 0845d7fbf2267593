package tests

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenCases are every case, by group (golden_cases_*_test.go).
func goldenCases() []goldenCase {
	return slices.Concat(goldenRowCases, goldenBulkCases, goldenConflictCases, goldenEachCases, goldenBlindCases, goldenTxCases)
}

// TestGolden: every form of SQL the plugin sends, on every dialect, is what its golden file says,
// text and bind variables (see golden_harness_test.go).
func TestGolden(t *testing.T) {
	for _, c := range goldenCases() {
		for _, d := range goldenDialects {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				compareGolden(t, goldenPath(d.name, c.name), goldenOutput(t, c, d))
			})
		}
	}
}

// TestGoldenFilesHaveCases: no golden file is left over from a case that is gone or renamed, and
// no two cases share a name.
func TestGoldenFilesHaveCases(t *testing.T) {
	names := map[string]bool{}
	for _, c := range goldenCases() {
		require.False(t, names[c.name], "case %s named twice", c.name)
		names[c.name] = true
	}
	for _, d := range goldenDialects {
		files, err := filepath.Glob(filepath.Join("testdata", "golden", d.name, "*.golden"))
		require.NoError(t, err)
		for _, f := range files {
			assert.True(t, names[strings.TrimSuffix(filepath.Base(f), ".golden")], "%s has no case", f)
		}
	}
}

// TestGoldenSQLiteVersionBranch: the version the fake answers takes GORM's SQLite dialector down the
// same branch as the embedded SQLite (3.35 or later: UPDATE has a FROM clause, which the JSON join
// needs).
func TestGoldenSQLiteVersionBranch(t *testing.T) {
	conn, err := sql.Open(sqlDriverName, filepath.Join(t.TempDir(), "version.db"))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var version string
	require.NoError(t, conn.QueryRowContext(ctx, "select sqlite_version()").Scan(&version))
	for _, v := range []string{version, goldenSQLiteVersion} {
		var major, minor int
		_, err := fmt.Sscanf(v, "%d.%d", &major, &minor)
		require.NoError(t, err)
		assert.True(t, major > 3 || major == 3 && minor >= 35, "SQLite %s is older than 3.35", v)
	}
}

// Helpers for the cases.

// goldenAffected scripts the same rows affected on every dialect.
func goldenAffected(affected ...int64) func(string) goldenScript {
	return func(string) goldenScript { return goldenScript{affected: affected} }
}

// goldenScripted scripts rows affected and the rows of the read-backs per dialect; the "" entry is for
// the dialects not named.
func goldenScripted(affected map[string][]int64, reads goldenReads) func(string) goldenScript {
	pick := func(d string) string {
		if _, ok := affected[d]; ok {
			return d
		}
		return ""
	}
	return func(d string) goldenScript {
		s := goldenScript{affected: affected[pick(d)]}
		rd, ok := reads[d]
		if !ok {
			rd = reads[""]
		}
		s.answer = func(n int) [][]driver.Value {
			if n < len(rd) {
				return rd[n]
			}
			return nil
		}
		return s
	}
}

// goldenReads are, per dialect, the rows of each read-back in turn.
type goldenReads = map[string][][][]driver.Value

// readBack builds one read-back's rows.
func readBack(r ...[]driver.Value) [][]driver.Value { return r }

// stored builds one row of a read-back, as stored.
func stored(v ...driver.Value) []driver.Value { return v }

// goldenRead is the updated_at of row n as read (pgx and the MySQL driver read them labelled with
// their session's zone; UTC here).
func goldenRead(n int) time.Time { return time.Date(2026, 3, 4, 3, 0, n, 500000000, time.UTC) }

// goldenItems are GoldenItems with the given keys, in that order, each at version key+2.
func goldenItems(ids ...uint) []GoldenItem {
	out := make([]GoldenItem, len(ids))
	for i, id := range ids {
		out[i] = GoldenItem{ID: id, Name: fmt.Sprintf("item %d", id), Qty: int(id) * 10, Version: int64(id) + 2}
	}
	return out
}

// goldenDocs are GoldenDocs with the given keys, in that order, each as read at goldenRead(key).
func goldenDocs(ids ...uint) []GoldenDoc {
	out := make([]GoldenDoc, len(ids))
	for i, id := range ids {
		out[i] = GoldenDoc{ID: id, Title: fmt.Sprintf("doc %d", id), UpdatedAt: goldenRead(int(id))}
	}
	return out
}

// goldenNotes are GoldenNotes with the given keys, in that order, each at version key+2.
func goldenNotes(ids ...uint) []GoldenNote {
	out := make([]GoldenNote, len(ids))
	for i, id := range ids {
		out[i] = GoldenNote{ID: id, Body: fmt.Sprintf("note %d", id), Version: int64(id) + 2}
	}
	return out
}

// goldenLines are GoldenLines of order 7 with the given line numbers, in that order, each at version
// line+2.
func goldenLines(nos ...int) []GoldenLine {
	out := make([]GoldenLine, len(nos))
	for i, no := range nos {
		out[i] = GoldenLine{OrderID: 7, LineNo: no, Qty: no, Version: int64(no) + 2}
	}
	return out
}
