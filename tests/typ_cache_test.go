package tests

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// catalogCounter is a GORM logger that counts the plugin's reads of column types.
type catalogCounter struct {
	logger.Interface
	reads atomic.Int64
}

func (l *catalogCounter) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if sql, _ := fc(); strings.Contains(sql, "pg_attribute") || strings.Contains(sql, "information_schema.columns") {
		l.reads.Add(1)
	}
	l.Interface.Trace(ctx, begin, fc, err)
}

func (l *catalogCounter) LogMode(level logger.LogLevel) logger.Interface { return l }

// TestConcurrentFirstWritesReadTypesOnce: many first writes of one table at once read its column
// types once, and every write is committed exactly.
func TestConcurrentFirstWritesReadTypesOnce(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openTyped(t, d, &gorm.Config{}, nil)
			counter := &catalogCounter{Interface: c.db.Logger}
			db := c.db.Session(&gorm.Session{Logger: counter})
			typTables(t, c, &TypItem{})
			rows := make([]TypItem, 8)
			for i := range rows {
				rows[i] = TypItem{Qty: 1, Version: 1}
			}
			require.NoError(t, c.observer.Create(&rows).Error)
			var wg sync.WaitGroup
			errs := make([]error, len(rows))
			for i := range rows {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = optlock.UpdateSafely(db, &rows[i], map[string]any{"qty": 7}).Error
				}()
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			want := int64(1)
			if d.name == "sqlite" {
				want = 0 // SQLite compares by value whatever the declared type: not asked
			}
			assert.Equal(t, want, counter.reads.Load(), "column types read once")
			var stored []TypItem
			require.NoError(t, c.observer.Order("id").Find(&stored).Error)
			assert.Equal(t, rows, stored, "committed exactly as the structs say")
			c.requireIdle(t)
		})
	}
}

// TestOnePluginTwoDatabases: one Plugin given to two *gorm.DB, one registering it while the other
// writes with it (run with -race).
func TestOnePluginTwoDatabases(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			p := optlock.New(optlock.Guard(&TypItem{}))
			c := openTyped(t, d, &gorm.Config{}, nil, optlock.Guard(&TypItem{}))
			typTables(t, c, &TypItem{})
			first, err := gorm.Open(c.db.Dialector, &gorm.Config{Logger: c.db.Logger})
			require.NoError(t, err)
			require.NoError(t, first.Use(p))
			pool, err := first.DB()
			require.NoError(t, err)
			t.Cleanup(func() { _ = pool.Close() })
			rows := make([]TypItem, 20)
			for i := range rows {
				rows[i] = TypItem{Qty: 1, Version: 1}
			}
			require.NoError(t, c.observer.Create(&rows).Error)

			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					second, err := gorm.Open(c.db.Dialector, &gorm.Config{Logger: c.db.Logger})
					if assert.NoError(t, err) {
						assert.NoError(t, second.Use(p))
						if conn, err := second.DB(); err == nil {
							_ = conn.Close()
						}
					}
				}
			}()
			for i := range rows {
				require.NoError(t, first.Model(&rows[i]).Update("qty", 7).Error, "a guarded write")
			}
			wg.Wait()
			var stored []TypItem
			require.NoError(t, c.observer.Order("id").Find(&stored).Error)
			assert.Equal(t, rows, stored, "committed exactly as the structs say")
			for _, r := range rows {
				assert.EqualValues(t, 2, r.Version, "checked and advanced: the guard held throughout")
			}
			assert.Zero(t, pool.Stats().InUse)
		})
	}
}
