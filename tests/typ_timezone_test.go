package tests

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// sameStamp compares an updated_at as the caller's struct holds it with what another pool reads: a
// timestamp without time zone by its wall clock (that is all the column stores), a timestamptz as an
// instant.
func sameStamp(wallClock bool, mine, stored time.Time) bool {
	if wallClock {
		return mine.Format("2006-01-02 15:04:05.999999") == stored.Format("2006-01-02 15:04:05.999999")
	}
	return mine.Equal(stored)
}

// TestPostgresSessionTimeZoneAndProtocol: a PostgreSQL session with a TimeZone east or west of UTC (as
// in GORM's documented DSN), over pgx's extended or simple protocol (PgBouncer's), with a timestamp or
// timestamptz lock: every path writes a freshly read or freshly created row, and refuses a row another
// writer changed, naming it, with nothing written and the structs as they were.
func TestPostgresSessionTimeZoneAndProtocol(t *testing.T) {
	d := dialects[1]
	for _, zone := range []string{"Asia/Shanghai", "America/New_York", "UTC"} {
		for _, protocol := range []string{"extended", "simple DSN", "simple Config"} {
			for _, column := range []string{"timestamp", "timestamptz", "timestamp(0)", "timestamptz(3)"} {
				t.Run(zone+"/"+protocol+"/"+column, func(t *testing.T) {
					c := openTyped(t, d, &gorm.Config{}, func(dsn string) gorm.Dialector {
						dsn += " TimeZone=" + zone
						switch protocol {
						case "simple DSN":
							return postgres.Open(dsn + " default_query_exec_mode=simple_protocol")
						case "simple Config":
							return postgres.New(postgres.Config{DSN: dsn, PreferSimpleProtocol: true})
						}
						return postgres.Open(dsn)
					}, optlock.Guard(&TypStamp{}))
					wallClock := !strings.HasPrefix(column, "timestamptz")
					for _, path := range typStampPaths {
						t.Run(path.name, func(t *testing.T) {
							typTables(t, c, &TypStamp{})
							typExec(t, c, `ALTER TABLE typ_stamps ALTER COLUMN updated_at TYPE `+column)

							// Rows just created by the caller (nanoseconds in memory), and rows it read.
							fresh := []TypStamp{{Body: "a"}, {Body: "b"}, {Body: "c"}}
							require.NoError(t, c.db.Create(&fresh).Error)
							var read []TypStamp
							require.NoError(t, c.db.Order("id").Find(&read).Error)
							require.NoError(t, path.write(c.db, &fresh).Error, "a freshly created row")
							requireStampsOn(t, c, fresh, path.deletes, wallClock)
							c.requireIdle(t)

							typExec(t, c, `UPDATE typ_stamps SET deleted_at = NULL, body = 'x'`)
							require.NoError(t, c.db.Order("id").Find(&read).Error)
							rows := append([]TypStamp(nil), read...)
							require.NoError(t, path.write(c.db, &rows).Error, "a freshly read row")
							requireStampsOn(t, c, rows, path.deletes, wallClock)
							c.requireIdle(t)

							// A real conflict: another writer moves the first row's updated_at on by a second.
							typExec(t, c, `UPDATE typ_stamps SET deleted_at = NULL, body = 'y'`)
							require.NoError(t, c.db.Order("id").Find(&read).Error)
							typExec(t, c, `UPDATE typ_stamps SET updated_at = updated_at + interval '1 second' WHERE id = `+itoa(read[0].ID))
							before := typStamps(t, c)
							stale := append([]TypStamp(nil), read...)
							res := path.write(c.db, &stale)
							requireConflict(t, res.Error, read[0].ID)
							assert.Equal(t, before, typStamps(t, c), "nothing written")
							want := append([]TypStamp(nil), read[:len(stale)]...)
							for i := range want {
								if callerEdits(path.name) {
									want[i].Body = "written"
								}
							}
							assert.Equal(t, want, stale, "the structs are as they were")
							c.requireIdle(t)
						})
					}
				})
			}
		}
	}
}

// requireStampsOn checks that every row is committed exactly as its struct says (deleted ones
// soft-deleted), comparing updated_at as the column stores it: a wall clock, or an instant.
func requireStampsOn(t *testing.T, c configured, rows []TypStamp, deleted, wallClock bool) {
	t.Helper()
	stored := typStamps(t, c)
	for _, r := range rows {
		got, ok := stored[r.ID]
		require.True(t, ok, "row %d is in the table", r.ID)
		if deleted {
			assert.True(t, got.DeletedAt.Valid, "row %d soft-deleted", r.ID)
			continue
		}
		assert.False(t, got.DeletedAt.Valid)
		assert.Equal(t, r.Body, got.Body, "row %d body", r.ID)
		assert.True(t, sameStamp(wallClock, r.UpdatedAt, got.UpdatedAt), "row %d updated_at: struct %v, stored %v", r.ID, r.UpdatedAt, got.UpdatedAt)
	}
}

func itoa(id uint) string { return uintString(id) }

func uintString(v uint) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

// TestPostgresSessionTimeZoneInAnotherProcessZone runs the session time zone test again in processes
// whose local time zone (TZ, which NowFunc and the structs' times use) is east, west and at UTC.
func TestPostgresSessionTimeZoneInAnotherProcessZone(t *testing.T) {
	if os.Getenv(zoneChildEnv) != "" {
		t.Skip("already running in another time zone")
	}
	for _, zone := range []string{"Asia/Shanghai", "America/New_York", "UTC"} {
		t.Run(zone, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresSessionTimeZoneAndProtocol$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "TZ="+zone, zoneChildEnv+"=1")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "the child in %s failed:\n%s", zone, tail(out, 6000))
			ran := strings.Contains(string(out), "--- PASS: TestPostgresSessionTimeZoneAndProtocol")
			skipped := strings.Contains(string(out), "--- SKIP: TestPostgresSessionTimeZoneAndProtocol")
			if !ran && !(skipped && !testenv.Required("postgres")) {
				t.Fatalf("the test did not run in %s:\n%s", zone, tail(out, 4000))
			}
		})
	}
}
