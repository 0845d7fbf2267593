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
	"gorm.io/plugin/dbresolver"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/roundtrip"
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

// TestPostgresSessionTimeZoneInAnotherProcessZone runs the session time zone test and the created rows
// test again in processes whose local time zone (TZ, which NowFunc and the structs' times use) is east,
// west and at UTC.
func TestPostgresSessionTimeZoneInAnotherProcessZone(t *testing.T) {
	if os.Getenv(zoneChildEnv) != "" {
		t.Skip("already running in another time zone")
	}
	for _, zone := range []string{"Asia/Shanghai", "America/New_York", "UTC"} {
		t.Run(zone, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestPostgresSessionTimeZoneAndProtocol$|^TestPostgresRowsCreatedOnEveryBinding$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "TZ="+zone, zoneChildEnv+"=1")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "the child in %s failed:\n%s", zone, tail(out, 6000))
			for _, name := range []string{"TestPostgresSessionTimeZoneAndProtocol", "TestPostgresRowsCreatedOnEveryBinding"} {
				ran := strings.Contains(string(out), "--- PASS: "+name+" ")
				skipped := strings.Contains(string(out), "--- SKIP: "+name+" ")
				if !ran && !(skipped && !testenv.Required("postgres")) {
					t.Fatalf("%s did not run in %s:\n%s", name, zone, tail(out, 4000))
				}
			}
		})
	}
}

// TestPostgresRowsCreatedOnEveryBinding: rows GORM has just created are written straight from their
// structs, on a timestamp without time zone lock, however the pool binds a time: pgx's extended
// protocol, its simple protocol and exec mode (which send the UTC instant, so the column holds the UTC
// wall clock while the struct shows the local one), the simple protocol with PrepareStmt (prepared
// statements bind as the extended protocol does), inside the caller's transaction, without GORM's
// transaction, behind dbresolver, after a dry run, with a NowFunc in a zone of its own. Every path
// writes them, then writes them again from the same structs, and refuses rows just created that another
// writer moved, naming the one, with nothing written and the structs as they were. It runs in other
// process zones through TestPostgresSessionTimeZoneInAnotherProcessZone.
func TestPostgresRowsCreatedOnEveryBinding(t *testing.T) {
	d := dialects[1]
	const simple = " default_query_exec_mode=simple_protocol"
	inTx := func(db *gorm.DB, write func(*gorm.DB) error) error {
		var inner error
		if err := db.Transaction(func(tx *gorm.DB) error { inner = write(tx); return nil }); err != nil {
			return err
		}
		return inner
	}
	type binding struct {
		name     string
		dsn      string
		cfg      gorm.Config
		resolver bool
		// write runs one write (nil: as it is).
		write func(db *gorm.DB, write func(*gorm.DB) error) error
		dry   bool
	}
	bindings := []binding{
		{name: "extended"},
		{name: "simple", dsn: simple},
		{name: "simple TimeZone west", dsn: " TimeZone=America/New_York" + simple},
		{name: "simple TimeZone east", dsn: " TimeZone=Asia/Shanghai" + simple},
		{name: "exec mode", dsn: " default_query_exec_mode=exec"},
		{name: "simple PrepareStmt", dsn: simple, cfg: gorm.Config{PrepareStmt: true}},
		{name: "simple SkipDefaultTransaction", dsn: simple, cfg: gorm.Config{SkipDefaultTransaction: true}},
		{name: "simple caller's transaction", dsn: simple, write: inTx},
		{name: "simple PrepareStmt caller's transaction", dsn: simple, cfg: gorm.Config{PrepareStmt: true}, write: inTx},
		{name: "simple dbresolver", dsn: simple, resolver: true},
		{name: "simple dbresolver caller's transaction", dsn: simple, resolver: true, write: func(db *gorm.DB, write func(*gorm.DB) error) error {
			return inTx(db.Clauses(dbresolver.Write), write)
		}},
		{name: "simple after a dry run", dsn: simple, dry: true},
		{name: "simple NowFunc in a zone of its own", dsn: simple, cfg: gorm.Config{NowFunc: func() time.Time {
			return time.Now().In(time.FixedZone("UTC-3", -3*3600))
		}}},
	}
	if zone := time.Local.String(); zone != "Local" {
		bindings = append(bindings, binding{name: "simple TimeZone of the process", dsn: " TimeZone=" + zone + simple})
	}
	for _, b := range bindings {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.cfg
			var dialector gorm.Dialector
			c := openTyped(t, d, &cfg, func(dsn string) gorm.Dialector {
				dialector = postgres.Open(dsn + b.dsn)
				return dialector
			}, optlock.Guard(&TypStamp{}))
			if b.resolver {
				require.NoError(t, c.db.Use(dbresolver.Register(dbresolver.Config{Sources: []gorm.Dialector{dialector}})))
			}
			write := b.write
			if write == nil {
				write = func(db *gorm.DB, w func(*gorm.DB) error) error { return w(db) }
			}
			typTables(t, c, &TypStamp{})
			typExec(t, c, `ALTER TABLE typ_stamps ALTER COLUMN updated_at TYPE timestamp`)
			create := func() []TypStamp {
				rows := []TypStamp{{Body: "a"}, {Body: "b"}, {Body: "c"}}
				require.NoError(t, c.db.Create(&rows).Error)
				return rows
			}
			for _, path := range typStampPaths {
				t.Run(path.name, func(t *testing.T) {
					fresh := create()
					if b.dry {
						before, dry := typStamps(t, c), append([]TypStamp(nil), fresh...)
						require.NoError(t, path.write(c.db.Session(&gorm.Session{DryRun: true}), &dry).Error, "a dry run")
						assert.Equal(t, before, typStamps(t, c), "a dry run writes nothing")
						want := append([]TypStamp(nil), fresh[:len(dry)]...)
						for i := range want {
							if callerEdits(path.name) {
								want[i].Body = "written"
							}
						}
						assert.Equal(t, want, dry, "a dry run leaves the structs as they were")
						c.requireIdle(t)
					}
					require.NoError(t, write(c.db, func(db *gorm.DB) error { return path.write(db, &fresh).Error }), "rows just created")
					requireStampsOn(t, c, fresh, path.deletes, true)
					c.requireIdle(t)
					if !path.deletes {
						require.NoError(t, write(c.db, func(db *gorm.DB) error { return path.write(db, &fresh).Error }), "the same structs again")
						requireStampsOn(t, c, fresh, false, true)
						c.requireIdle(t)
					}

					// Rows just created, the first of which another writer moves on by a second.
					created := create()
					typExec(t, c, `UPDATE typ_stamps SET updated_at = updated_at + interval '1 second' WHERE id = `+itoa(created[0].ID))
					before := typStamps(t, c)
					stale := append([]TypStamp(nil), created...)
					err := write(c.db, func(db *gorm.DB) error { return path.write(db, &stale).Error })
					requireConflict(t, err, created[0].ID)
					assert.Equal(t, before, typStamps(t, c), "nothing written")
					want := append([]TypStamp(nil), created[:len(stale)]...)
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

// TestPostgresTimeBindingAskedOncePerPool: a lock on a timestamp without time zone asks the pool once
// how it binds a time (one SELECT on the first write, beside the column types), not on every write;
// inside the caller's own transaction, whose pool is not known, once per transaction. A timestamptz
// lock never asks.
func TestPostgresTimeBindingAskedOncePerPool(t *testing.T) {
	d := dialects[1]
	for _, column := range []string{"timestamp", "timestamptz"} {
		t.Run(column, func(t *testing.T) {
			c := openTyped(t, d, &gorm.Config{}, func(dsn string) gorm.Dialector {
				return postgres.Open(dsn + " default_query_exec_mode=simple_protocol")
			}, optlock.Guard(&TypStamp{}))
			typTables(t, c, &TypStamp{})
			typExec(t, c, `ALTER TABLE typ_stamps ALTER COLUMN updated_at TYPE `+column)
			rows := []TypStamp{{Body: "a"}, {Body: "b"}}
			require.NoError(t, c.db.Create(&rows).Error)
			counter, err := roundtrip.Install(c.db)
			require.NoError(t, err)
			probe := int64(0)
			if column == "timestamp" {
				probe = 1
			}
			update := func(db *gorm.DB, row *TypStamp) error { return db.Model(row).Update("body", "x").Error }

			first := roundTrips(t, counter, func() error { return update(c.db, &rows[0]) }, false)
			assert.EqualValues(t, 4+probe, first, "the first write: BEGIN, the column types, the binding, UPDATE, COMMIT")
			again := roundTrips(t, counter, func() error { return update(c.db, &rows[0]) }, false)
			assert.EqualValues(t, 3, again, "BEGIN, UPDATE, COMMIT")
			for range 2 {
				require.NoError(t, c.db.Transaction(func(tx *gorm.DB) error {
					counter.Reset()
					require.NoError(t, update(tx, &rows[1]))
					assert.EqualValues(t, 1+probe, counter.Count(), "the first write in the caller's transaction: the binding, UPDATE")
					counter.Reset()
					require.NoError(t, update(tx, &rows[1]))
					assert.EqualValues(t, 1, counter.Count(), "the second: UPDATE")
					return nil
				}))
			}
			requireStampsOn(t, c, rows, false, column == "timestamp")
			c.requireIdle(t)
		})
	}
}
