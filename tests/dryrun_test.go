package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// TestDryRunBeforeTheFirstWrite: a dry run (Session{DryRun: true} or ToSQL) as the first lock-checked
// statement of a model with timestamps must neither crash, nor touch the rows, nor leave what it
// learnt of the table wrong for the real writes after it.
func TestDryRunBeforeTheFirstWrite(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&TypStamp{}}, optlock.Guard(&TypStamp{}))
			if d.name == "postgres" {
				// A table made by hand, before optlock: whole seconds with a time zone.
				require.NoError(t, c.observer.Exec(`ALTER TABLE typ_stamps ALTER COLUMN updated_at TYPE timestamptz(0)`).Error)
			}
			row := TypStamp{Body: "a"}
			require.NoError(t, c.observer.Create(&row).Error)
			var read TypStamp
			require.NoError(t, c.observer.First(&read, row.ID).Error)

			dry := read
			res := c.db.Session(&gorm.Session{DryRun: true}).Model(&dry).Update("body", "dry")
			require.NoError(t, res.Error)
			assert.Contains(t, res.Statement.SQL.String(), "updated_at")
			assert.Equal(t, read, dry, "a dry run leaves the struct as it was")
			sqlText := c.db.ToSQL(func(tx *gorm.DB) *gorm.DB { return tx.Model(&dry).Update("body", "dry") })
			assert.Contains(t, sqlText, "updated_at")
			c.requireIdle(t)

			// The real write of a freshly created row (nanoseconds in memory) is not refused.
			fresh := TypStamp{Body: "b"}
			require.NoError(t, c.db.Create(&fresh).Error)
			require.NoError(t, c.db.Model(&fresh).Update("body", "written").Error)
			require.NoError(t, c.db.Model(&read).Update("body", "written").Error)
			var got TypStamp
			require.NoError(t, c.observer.First(&got, read.ID).Error)
			assert.Equal(t, "written", got.Body)
			assert.True(t, got.UpdatedAt.After(row.UpdatedAt.Add(-time.Second)))
			c.requireIdle(t)
		})
	}
}

// typStampPaths are the write paths of a timestamp-locked model, each given the rows it writes; a
// path changes the rows' Body in memory first where the write takes its values from the structs
// (callerEdits: the structs as they were are the structs with that edit).
var typStampPaths = []struct {
	name    string
	deletes bool
	write   func(db *gorm.DB, rows *[]TypStamp) *gorm.DB
}{
	{"guarded Update of one row", false, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		*rows = (*rows)[:1]
		return db.Model(&(*rows)[0]).Update("body", "written")
	}},
	{"single row UpdateSafely", false, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		*rows = (*rows)[:1]
		return optlock.UpdateSafely(db, &(*rows)[0], map[string]any{"body": "written"})
	}},
	{"Save of one row", false, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		*rows = (*rows)[:1]
		(*rows)[0].Body = "written"
		return db.Save(&(*rows)[0])
	}},
	{"bulk UpdateSafely", false, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		return optlock.UpdateSafely(db, rows, map[string]any{"body": "written"})
	}},
	{"WithLock Updates of a slice", false, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		return db.Scopes(optlock.WithLock()).Model(rows).Updates(map[string]any{"body": "written"})
	}},
	{"UpdateEach", false, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		for i := range *rows {
			(*rows)[i].Body = "written"
		}
		return optlock.UpdateEach(db, rows, "body")
	}},
	{"Delete of one row", true, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		*rows = (*rows)[:1]
		return db.Delete(&(*rows)[0])
	}},
	{"Delete of a slice", true, func(db *gorm.DB, rows *[]TypStamp) *gorm.DB {
		return db.Delete(rows)
	}},
}

// typStamps reads the stamps as another process sees them, by ID (Unscoped: soft-deleted rows too).
func typStamps(t *testing.T, c configured) map[uint]TypStamp {
	t.Helper()
	var rows []TypStamp
	err := c.observer.Unscoped().Order("id").Find(&rows).Error
	for i := 0; i < 3 && err != nil && strings.Contains(err.Error(), "cached plan must not change result type"); i++ {
		// The observer's pool is shared: a connection that ran this SELECT before the test remade
		// the table holds a prepared plan of the old table; pgx drops it after this error.
		rows = nil
		err = c.observer.Unscoped().Order("id").Find(&rows).Error
	}
	require.NoError(t, err)
	byID := make(map[uint]TypStamp, len(rows))
	for _, r := range rows {
		byID[r.ID] = r
	}
	return byID
}

// requireStampsStored checks that every row is committed exactly as its struct says (deleted ones
// soft-deleted), as another pool reads them.
func requireStampsStored(t *testing.T, c configured, rows []TypStamp, deleted bool) {
	t.Helper()
	requireStampsOn(t, c, rows, deleted, false)
}

// TestDryRunWritesNothing: on every write path, a dry run (a DryRun session, or ToSQL) as the first
// lock-checked statement of the model builds the statement and nothing else: no row changes, the
// structs stay as they were, the pool is idle, and what it learnt of the table (a hand-made coarse
// timestamp) is right for the real writes after it, which then commit exactly what the structs say.
func TestDryRunWritesNothing(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			for _, chunked := range []bool{false, true} {
				for _, mode := range []string{"DryRun session", "ToSQL"} {
					for _, path := range typStampPaths {
						name := mode + "/" + path.name
						if chunked {
							name += "/chunked"
						}
						if chunked && path.name == "Delete of a slice" {
							continue // a delete is never split: rows beyond one statement are refused
						}
						t.Run(name, func(t *testing.T) {
							opts := []optlock.Option{optlock.Guard(&TypStamp{})}
							if chunked {
								opts = append(opts, optlock.WithBindVarLimit(12))
							}
							c := openConfigured(t, d, &gorm.Config{}, []any{&TypStamp{}}, opts...)
							switch d.name {
							case "postgres":
								typExec(t, c, `ALTER TABLE typ_stamps ALTER COLUMN updated_at TYPE timestamptz(0)`)
							case "mysql":
								typExec(t, c, `ALTER TABLE typ_stamps MODIFY updated_at datetime(0) NULL`)
							}
							seed := []TypStamp{{Body: "a"}, {Body: "b"}, {Body: "c"}, {Body: "d"}}
							require.NoError(t, c.observer.Create(&seed).Error)
							var read []TypStamp
							require.NoError(t, c.observer.Order("id").Find(&read).Error)
							before := typStamps(t, c)

							rows := append([]TypStamp(nil), read...)
							var res *gorm.DB
							if mode == "ToSQL" {
								sqlText := c.db.ToSQL(func(tx *gorm.DB) *gorm.DB {
									res = path.write(tx, &rows)
									return res
								})
								assert.NotEmpty(t, sqlText)
							} else {
								res = path.write(c.db.Session(&gorm.Session{DryRun: true}), &rows)
								assert.NotEmpty(t, res.Statement.SQL.String())
							}
							require.NoError(t, res.Error)
							want := append([]TypStamp(nil), read...)
							for i := range rows {
								if callerEdits(path.name) {
									want[i].Body = "written" // the caller's own edit, before the call
								}
								assert.Equal(t, want[i], rows[i], "a dry run leaves the structs as they were")
							}
							assert.Equal(t, before, typStamps(t, c), "a dry run writes nothing")
							c.requireIdle(t)

							// The real writes: rows just created (nanoseconds in memory), and rows read.
							fresh := []TypStamp{{Body: "e"}, {Body: "f"}, {Body: "g"}}
							require.NoError(t, c.db.Create(&fresh).Error)
							require.NoError(t, path.write(c.db, &fresh).Error)
							requireStampsStored(t, c, fresh, path.deletes)
							rows = append([]TypStamp(nil), read...)
							require.NoError(t, path.write(c.db, &rows).Error)
							requireStampsStored(t, c, rows, path.deletes)
							c.requireIdle(t)
						})
					}
				}
			}
		})
	}
}

// callerEdits says the path sets Body in the structs before the call.
func callerEdits(path string) bool { return path == "UpdateEach" || path == "Save of one row" }
