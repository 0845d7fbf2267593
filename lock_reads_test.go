package optlock_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// The plugin's query callback runs on every read, but only an attempt of RetryLockAfter needs it: a
// First outside one allocates no more with the plugin than without it, on the same connections.
func TestUnusedLockReadsAddsNoAllocations(t *testing.T) {
	conn, err := emptyDB(t).DB()
	require.NoError(t, err)
	open := func() *gorm.DB {
		db, err := gorm.Open(sqlite.New(sqlite.Config{Conn: conn}), &gorm.Config{Logger: logger.Discard})
		require.NoError(t, err)
		return db
	}
	plain, withPlugin := open(), open()
	require.NoError(t, withPlugin.Use(optlock.New()))
	require.NoError(t, plain.AutoMigrate(&guarded{}))
	require.NoError(t, plain.Create(&guarded{ID: 1, Version: 1}).Error)

	allocsOfFirst := func(db *gorm.DB) float64 {
		return testing.AllocsPerRun(200, func() {
			var row guarded
			if err := db.First(&row, 1).Error; err != nil {
				t.Fatal(err)
			}
		})
	}
	want := allocsOfFirst(plain)
	assert.Equal(t, want, allocsOfFirst(withPlugin), "allocations of a First, without the plugin: %v", want)
}
