package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

func TestScopeOnUpdatesChecksAndAdvances(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		stale := item

		res := db.Scopes(optlock.WithLock("version")).Model(&item).Updates(map[string]any{"qty": 5})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 1, res.RowsAffected)
		assert.EqualValues(t, 2, item.Version)
		assert.Equal(t, item, loadItems(t, db)[item.ID])

		res = db.Scopes(optlock.WithLock("version")).Model(&stale).Updates(map[string]any{"qty": 6})
		requireConflict(t, res.Error, item.ID)
		assert.Equal(t, item, loadItems(t, db)[item.ID])
	})
}

func TestScopeOnUpdateWithStructValues(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		stale := item

		require.NoError(t, db.Scopes(optlock.WithLock()).Model(&item).Update("qty", 4).Error)
		assert.EqualValues(t, 2, item.Version)
		require.NoError(t, db.Scopes(optlock.WithLock()).Model(&item).Updates(Item{Name: "renamed"}).Error)
		assert.EqualValues(t, 3, item.Version)
		assert.Equal(t, item, loadItems(t, db)[item.ID])

		requireConflict(t, db.Scopes(optlock.WithLock()).Model(&stale).Updates(Item{Name: "stale"}).Error, item.ID)
		assert.Equal(t, item, loadItems(t, db)[item.ID])
	})
}

// A *gorm.DB with the scope, kept in a repository and used for many writes.
func TestScopeOnAKeptSessionIsReusable(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 3)
		locked := db.Scopes(optlock.WithLock("version")).Session(&gorm.Session{})
		for i := range items {
			require.NoError(t, locked.Model(&items[i]).Update("qty", 1).Error)
			require.NoError(t, optlock.UpdateSafely(locked, &items[i], map[string]any{"qty": 2}).Error)
		}
		require.NoError(t, optlock.UpdateSafely(locked, &items, map[string]any{"qty": 3}).Error)
		stored := loadItems(t, db)
		for _, it := range items {
			assert.EqualValues(t, 4, it.Version)
			assert.Equal(t, it, stored[it.ID])
		}
	})
}

func TestStatementsWithoutTheScopeAreUntouched(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]

		dry := db.Session(&gorm.Session{DryRun: true}).Model(&item).Updates(map[string]any{"qty": 1}).Statement
		assert.NotContains(t, dry.SQL.String(), "version", "no lock column in %s", dry.SQL.String())

		require.NoError(t, db.Model(&item).Updates(map[string]any{"qty": 2}).Error)
		stored := loadItems(t, db)[item.ID]
		assert.EqualValues(t, 1, stored.Version, "plain update leaves the version alone")
		assert.Equal(t, 2, stored.Qty)

		// A stale struct through plain GORM still overwrites: the plugin only acts when asked.
		require.NoError(t, db.Model(&Item{ID: item.ID, Version: 0}).Update("qty", 3).Error)
		assert.Equal(t, 3, loadItems(t, db)[item.ID].Qty)
	})
}

func TestDryRunShowsThePredicateAndWritesNothing(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 2)
		dry := db.Session(&gorm.Session{DryRun: true})

		stmt := optlock.UpdateSafely(dry, &items, map[string]any{"qty": 0})
		require.NoError(t, stmt.Error)
		sql := stmt.Statement.SQL.String()
		assert.Contains(t, sql, "IN")
		assert.Regexp(t, `(?i)COALESCE\(.version.{1,3}0\) \+ 1`, sql) // a NULL version advances to 1
		assert.EqualValues(t, 1, items[0].Version, "a dry run advances nothing")
		assert.Equal(t, 10, loadItems(t, db)[items[0].ID].Qty)
	})
}

// MySQL reports changed rows, not matched rows: rewriting identical values must not look like a
// conflict, because the lock column always changes.
func TestWritingIdenticalValuesIsNotAConflict(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 3)
		res := optlock.UpdateSafely(db, &items, map[string]any{"qty": 10, "name": gorm.Expr("name")})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 3, res.RowsAffected)
		res = optlock.UpdateSafely(db, &items[0], map[string]any{"qty": 10})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 1, res.RowsAffected)
	})
}
