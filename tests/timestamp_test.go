package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// nanoClock is a NowFunc with full nanoseconds, finer than any of the databases stores.
func nanoClock() time.Time { return time.Now() }

func loadDoc(t *testing.T, db *gorm.DB, id uint) Doc {
	t.Helper()
	var d Doc
	require.NoError(t, db.First(&d, id).Error)
	return d
}

// A row just made by Create holds an in-memory time finer than the column; it must still match.
func TestTimestampRowFromCreateUpdatesWithoutFalseConflict(t *testing.T) {
	eachDB(t, []any{&Doc{}}, func(t *testing.T, db *gorm.DB) {
		for name, create := range map[string]*gorm.DB{
			"dialect clock":    db,
			"nanosecond clock": db.Session(&gorm.Session{NowFunc: nanoClock}),
		} {
			t.Run(name, func(t *testing.T) {
				doc := Doc{Title: "draft"}
				require.NoError(t, create.Create(&doc).Error)
				created := doc.UpdatedAt

				res := optlock.UpdateSafely(db.Scopes(optlock.WithLock("updated_at")), &doc, map[string]any{"title": "final"})
				require.NoError(t, res.Error)
				require.EqualValues(t, 1, res.RowsAffected)
				stored := loadDoc(t, db, doc.ID)
				assert.True(t, doc.UpdatedAt.Equal(stored.UpdatedAt), "in memory %v, stored %v", doc.UpdatedAt, stored.UpdatedAt)
				assert.True(t, stored.UpdatedAt.After(created), "stored %v not after created %v", stored.UpdatedAt, created)
				assert.Equal(t, "final", stored.Title)
			})
		}
	})
}

func TestTimestampManyConsecutiveUpdatesFromOneStruct(t *testing.T) {
	eachDB(t, []any{&Doc{}}, func(t *testing.T, db *gorm.DB) {
		doc := Doc{Title: "v0"}
		require.NoError(t, db.Session(&gorm.Session{NowFunc: nanoClock}).Create(&doc).Error)
		locked := db.Scopes(optlock.WithLock()) // Doc has no version: updated_at is the default
		previous := loadDoc(t, db, doc.ID).UpdatedAt
		for i := range 30 {
			require.NoError(t, optlock.UpdateSafely(locked, &doc, map[string]any{"title": "v" + string(rune('a'+i))}).Error, "write %d", i)
			stored := loadDoc(t, db, doc.ID)
			require.True(t, doc.UpdatedAt.Equal(stored.UpdatedAt), "write %d: in memory %v, stored %v", i, doc.UpdatedAt, stored.UpdatedAt)
			require.True(t, stored.UpdatedAt.After(previous), "write %d: %v not after %v", i, stored.UpdatedAt, previous)
			previous = stored.UpdatedAt
		}
	})
}

// With the clock frozen, every write still moves updated_at on by one step of the column's
// precision, so a second writer holding the same snapshot conflicts.
func TestTimestampWritesWithinOneClockTickStillConflict(t *testing.T) {
	eachDB(t, []any{&Doc{}}, func(t *testing.T, db *gorm.DB) {
		frozen := time.Now().Truncate(time.Second)
		stopped := db.Session(&gorm.Session{NowFunc: func() time.Time { return frozen }})
		doc := Doc{Title: "a"}
		require.NoError(t, stopped.Create(&doc).Error)
		mine, theirs := doc, doc

		require.NoError(t, optlock.UpdateSafely(stopped, &theirs, map[string]any{"title": "theirs"}).Error)
		assert.True(t, theirs.UpdatedAt.After(frozen))
		requireConflict(t, optlock.UpdateSafely(stopped, &mine, map[string]any{"title": "mine"}).Error, doc.ID)
		assert.Equal(t, "theirs", loadDoc(t, db, doc.ID).Title)

		for range 3 {
			before := theirs.UpdatedAt
			require.NoError(t, optlock.UpdateSafely(stopped, &theirs, map[string]any{"title": "again"}).Error)
			assert.True(t, theirs.UpdatedAt.After(before))
			assert.True(t, theirs.UpdatedAt.Equal(loadDoc(t, db, doc.ID).UpdatedAt))
		}
	})
}

func TestTimestampStaleRowConflicts(t *testing.T) {
	eachDB(t, []any{&Doc{}}, func(t *testing.T, db *gorm.DB) {
		docs := []Doc{{Title: "a"}, {Title: "b"}, {Title: "c"}}
		require.NoError(t, db.Session(&gorm.Session{NowFunc: nanoClock}).Create(&docs).Error)
		other := docs[1]
		require.NoError(t, optlock.UpdateSafely(db, &other, map[string]any{"title": "other"}).Error)

		read := append([]Doc(nil), docs...)
		requireConflict(t, optlock.UpdateSafely(db, &docs, map[string]any{"title": "bulk"}).Error, docs[1].ID)
		assert.Equal(t, read, docs)

		docs[1] = other
		require.NoError(t, optlock.UpdateSafely(db, &docs, map[string]any{"title": "bulk"}).Error)
		for _, d := range docs {
			assert.True(t, d.UpdatedAt.Equal(loadDoc(t, db, d.ID).UpdatedAt))
		}
	})
}

func TestVersionAndTimestampTogether(t *testing.T) {
	eachDB(t, []any{&Note{}}, func(t *testing.T, db *gorm.DB) {
		note := Note{Body: "x"}
		require.NoError(t, db.Create(&note).Error)
		stale := note
		locked := db.Scopes(optlock.WithLock("Version", "updated_at"))

		require.NoError(t, optlock.UpdateSafely(locked, &note, map[string]any{"body": "y"}).Error)
		var stored Note
		require.NoError(t, db.First(&stored, note.ID).Error)
		assert.EqualValues(t, 1, note.Version)
		assert.Equal(t, stored.Version, note.Version)
		assert.True(t, stored.UpdatedAt.Equal(note.UpdatedAt))

		requireConflict(t, optlock.UpdateSafely(locked, &stale, map[string]any{"body": "z"}).Error, note.ID)
	})
}

// The timestamp tests again in processes whose local time zone is east and west of UTC (the MySQL DSN
// uses loc=Local; pgx reads a timestamp without time zone as UTC), so zone conversions cannot hide a
// false conflict, a missed one, or a timestamp that drifts with every write.
func TestTimestampsInAnotherTimeZone(t *testing.T) {
	if os.Getenv(zoneChildEnv) != "" {
		t.Skip("already running in another time zone")
	}
	for _, zone := range []string{"Asia/Kolkata", "America/New_York"} {
		t.Run(zone, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestTimestamp|^TestVersionAndTimestamp|^TestCoarse", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "TZ="+zone, zoneChildEnv+"=1")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "the child in %s failed:\n%s", zone, tail(out, 4000))
			for _, d := range dialects {
				name := "TestTimestampWithoutTimeZoneStaysOnTheClock/" + d.name
				ran := strings.Contains(string(out), "--- PASS: "+name)
				skipped := strings.Contains(string(out), "--- SKIP: "+name)
				if !ran && !(skipped && !testenv.Required(d.name)) {
					t.Fatalf("%s did not run in %s:\n%s", name, zone, tail(out, 4000))
				}
				if skipped {
					t.Logf("%s: %s unreachable, skipped in the child", zone, d.name)
				}
			}
		})
	}
}

// zoneChildEnv marks a child process of TestTimestampsInAnotherTimeZone.
const zoneChildEnv = "OPTLOCK_ZONE_CHILD"

// tail returns the last n bytes of out.
func tail(out []byte, n int) string {
	if len(out) > n {
		return "...\n" + string(out[len(out)-n:])
	}
	return string(out)
}

// SQLite opened with _loc=auto reads timestamps in the local zone while NowFunc writes UTC: the texts
// differ, the instants do not, and the lock compares instants.
func TestTimestampSQLiteLocAutoWithUTCClock(t *testing.T) {
	if sqliteDriver != "mattn" {
		t.Skipf("_loc is a DSN parameter of mattn/go-sqlite3; this binary's SQLite driver is %s", sqliteDriver)
	}
	dsn := sqliteDSN(filepath.Join(t.TempDir(), "locauto.db"), 10000) + "&_loc=auto"
	db, err := gorm.Open(sqliteOpen(dsn), &gorm.Config{Logger: gormConfig().Logger, NowFunc: func() time.Time { return time.Now().UTC() }})
	require.NoError(t, err)
	t.Cleanup(func() {
		if conn, err := db.DB(); err == nil {
			_ = conn.Close()
		}
	})
	require.NoError(t, db.Use(optlock.New()))
	require.NoError(t, db.AutoMigrate(&Doc{}))
	doc := Doc{Title: "a"}
	require.NoError(t, db.Create(&doc).Error)
	var stale Doc
	require.NoError(t, db.First(&stale, doc.ID).Error)
	for i := range 3 {
		var read Doc
		require.NoError(t, db.First(&read, doc.ID).Error)
		require.NoError(t, optlock.UpdateSafely(db, &read, map[string]any{"title": "round"}).Error, "round %d: no false conflict", i)
	}
	requireConflict(t, optlock.UpdateSafely(db, &stale, map[string]any{"title": "stale"}).Error, doc.ID)
}
