package tests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/internal/testenv"
)

// eachHandMadeTable runs fn on every database with a table made by hand, not by GORM's migrator, from
// the DDL given per dialect.
func eachHandMadeTable(t *testing.T, table string, ddl map[string]string, fn func(t *testing.T, db *gorm.DB)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			db, err := d.open(t)
			if err != nil {
				if testenv.Required(d.name) {
					t.Fatalf("%v (required: CI=true or OPTLOCK_REQUIRE_DBS)", err)
				}
				t.Skipf("skipping %s: %v", d.name, err)
			}
			require.NoError(t, db.Use(optlock.New()))
			require.NoError(t, db.Migrator().DropTable(table))
			require.NoError(t, db.Exec(ddl[d.name]).Error)
			t.Cleanup(func() { _ = db.Migrator().DropTable(table) })
			fn(t, db)
		})
	}
}

// CoarseDoc lives in a table whose updated_at holds whole seconds, without a precision tag.
type CoarseDoc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt time.Time
}

func (CoarseDoc) TableName() string { return "core_coarse_docs" }

// Two writers holding the same read within one second: the second is refused, because the new value
// is strictly later at the precision the column really has (read from the table, not from tags).
func TestCoarseHandMadeTimestampColumnStillConflicts(t *testing.T) {
	eachHandMadeTable(t, "core_coarse_docs", map[string]string{
		"sqlite":   "CREATE TABLE core_coarse_docs (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, updated_at DATETIME)",
		"postgres": "CREATE TABLE core_coarse_docs (id BIGSERIAL PRIMARY KEY, title TEXT, updated_at TIMESTAMPTZ(0))",
		"mysql":    "CREATE TABLE core_coarse_docs (id BIGINT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(64), updated_at DATETIME NULL)",
	}, func(t *testing.T, db *gorm.DB) {
		frozen := time.Now().Truncate(time.Second)
		stopped := db.Session(&gorm.Session{NowFunc: func() time.Time { return frozen }})
		doc := CoarseDoc{Title: "a"}
		require.NoError(t, stopped.Create(&doc).Error)
		var mine, theirs CoarseDoc
		require.NoError(t, db.First(&mine, doc.ID).Error)
		require.NoError(t, db.First(&theirs, doc.ID).Error)

		require.NoError(t, optlock.UpdateSafely(stopped, &theirs, map[string]any{"title": "theirs"}).Error)
		requireConflict(t, optlock.UpdateSafely(stopped, &mine, map[string]any{"title": "mine"}).Error, doc.ID)

		previous := theirs.UpdatedAt
		for i := range 3 {
			require.NoError(t, optlock.UpdateSafely(stopped, &theirs, map[string]any{"title": "again"}).Error, "write %d", i)
			var stored CoarseDoc
			require.NoError(t, db.First(&stored, doc.ID).Error)
			require.True(t, stored.UpdatedAt.Equal(theirs.UpdatedAt), "write %d: in memory %v, stored %v", i, theirs.UpdatedAt, stored.UpdatedAt)
			require.True(t, stored.UpdatedAt.After(previous), "write %d: %v not after %v", i, stored.UpdatedAt, previous)
			previous = stored.UpdatedAt
		}
	})
}

// WallDoc lives in a table whose updated_at has no time zone (PostgreSQL timestamp, MySQL datetime).
type WallDoc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt time.Time
}

func (WallDoc) TableName() string { return "core_wall_docs" }

// Read-then-write rounds must not move updated_at away from the clock, whatever the process's time
// zone (TestTimestampsInAnotherTimeZone runs this east and west of UTC), and a stale holder is refused.
func TestTimestampWithoutTimeZoneStaysOnTheClock(t *testing.T) {
	eachHandMadeTable(t, "core_wall_docs", map[string]string{
		"sqlite":   "CREATE TABLE core_wall_docs (id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT, updated_at DATETIME)",
		"postgres": "CREATE TABLE core_wall_docs (id BIGSERIAL PRIMARY KEY, title TEXT, updated_at TIMESTAMP)",
		"mysql":    "CREATE TABLE core_wall_docs (id BIGINT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(64), updated_at DATETIME(6) NULL)",
	}, func(t *testing.T, db *gorm.DB) {
		doc := WallDoc{Title: "a"}
		require.NoError(t, db.Create(&doc).Error)
		var first WallDoc
		require.NoError(t, db.First(&first, doc.ID).Error)
		stale := first
		for round := range 4 {
			var read WallDoc
			require.NoError(t, db.First(&read, doc.ID).Error)
			require.NoError(t, optlock.UpdateSafely(db, &read, map[string]any{"title": "round"}).Error, "round %d", round)
		}
		var last WallDoc
		require.NoError(t, db.First(&last, doc.ID).Error)
		moved := last.UpdatedAt.Sub(first.UpdatedAt)
		assert.True(t, moved > 0 && moved < time.Minute, "four writes moved updated_at by %v (from %v to %v)", moved, first.UpdatedAt, last.UpdatedAt)
		requireConflict(t, optlock.UpdateSafely(db, &stale, map[string]any{"title": "stale"}).Error, doc.ID)
	})
}

// A timestamp set by SQL (CURRENT_TIMESTAMP, a trigger, another tool) is stored in the database's
// own format; a caller holding what it read can still write, and a stale one is still refused.
func TestTimestampSetBySQLIsNotAFalseConflict(t *testing.T) {
	eachDB(t, []any{&Doc{}}, func(t *testing.T, db *gorm.DB) {
		doc := Doc{Title: "a"}
		require.NoError(t, db.Create(&doc).Error)
		require.NoError(t, db.Exec("UPDATE core_docs SET updated_at = CURRENT_TIMESTAMP WHERE id = ?", doc.ID).Error)
		var mine, theirs Doc
		require.NoError(t, db.First(&mine, doc.ID).Error)
		require.NoError(t, db.First(&theirs, doc.ID).Error)

		require.NoError(t, optlock.UpdateSafely(db, &theirs, map[string]any{"title": "theirs"}).Error)
		err := optlock.UpdateSafely(db, &mine, map[string]any{"title": "mine"}).Error
		lockErr := requireConflict(t, err, doc.ID)
		current, ok := lockErr.Rows[0].Current["updated_at"].(time.Time)
		require.True(t, ok, "current value read: %v", lockErr.Rows[0].Current)
		assert.False(t, current.Equal(mine.UpdatedAt), "the error names the new value, not the one the caller holds")
	})
}
