package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/plugin/optimisticlock"

	"github.com/go-optlock/optlock"
)

// Player is a model written for gorm.io/plugin/optimisticlock, unchanged.
type Player struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Age     uint
	Version optimisticlock.Version
}

func (Player) TableName() string { return "core_players" }

// playerRepo is repository code written for the official plugin, as its README shows it.
type playerRepo struct{ db *gorm.DB }

func (r playerRepo) create(p *Player) error { return r.db.Create(p).Error }

func (r playerRepo) rename(p *Player, name string) *gorm.DB {
	return r.db.Model(p).Update("name", name)
}

func (r playerRepo) setAgeWhere(id uint, age uint) *gorm.DB {
	return r.db.Model(&Player{}).Where("id = ?", id).Update("age", age)
}

// The same repository code against the official plugin's model, first as the official plugin runs
// it, then with optlock guarding the model: a stale write that the official plugin reports only as
// RowsAffected == 0 is an ErrConflict, the in-memory version advances, and a query-based write still
// advances the version.
func TestMigrationFromTheOfficialPlugin(t *testing.T) {
	eachDB(t, []any{&Player{}}, func(t *testing.T, db *gorm.DB) {
		official := playerRepo{db: rawSession(t, db)}
		p := Player{Name: "ann", Age: 30}
		require.NoError(t, official.create(&p))
		assert.Equal(t, optimisticlock.Version{Int64: 1, Valid: true}, p.Version, "the type's own Create sets 1")
		stale := p
		res := official.rename(&p, "bo")
		require.NoError(t, res.Error)
		assert.EqualValues(t, 1, p.Version.Int64, "the official plugin does not advance the struct")
		res = official.rename(&stale, "cy")
		require.NoError(t, res.Error, "the official plugin reports a stale write only as zero rows")
		assert.Zero(t, res.RowsAffected)

		guarded := playerRepo{db: db}
		var fresh Player
		require.NoError(t, db.First(&fresh, p.ID).Error)
		mine := fresh
		require.NoError(t, guarded.rename(&fresh, "di").Error)
		assert.EqualValues(t, 3, fresh.Version.Int64, "optlock advances the struct")
		requireConflict(t, guarded.rename(&mine, "ed").Error, p.ID)
		require.NoError(t, guarded.rename(&fresh, "fa").Error, "the advanced struct writes again")

		require.NoError(t, guarded.setAgeWhere(p.ID, 40).Error)
		var stored Player
		require.NoError(t, db.First(&stored, p.ID).Error)
		assert.EqualValues(t, 5, stored.Version.Int64, "a query-based write advances the version once")
		assert.EqualValues(t, 40, stored.Age)
		requireConflict(t, guarded.rename(&fresh, "ga").Error, p.ID)
	}, optlock.Guard(&Player{}))
}

// rawSession is a *gorm.DB on db's connections without the optlock plugin.
func rawSession(t *testing.T, db *gorm.DB) *gorm.DB {
	t.Helper()
	raw, err := gorm.Open(db.Dialector, &gorm.Config{Logger: db.Logger})
	require.NoError(t, err)
	t.Cleanup(func() {
		mine, _ := raw.DB()
		shared, _ := db.DB()
		if mine != shared {
			_ = mine.Close()
		}
	})
	return raw
}
