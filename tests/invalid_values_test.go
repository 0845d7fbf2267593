package tests

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// TestValuesNamingAFieldThatIsNoColumnAreRefused: a values key naming a gorm:"-" field, by its column
// name or its Go name, is refused on every lock-aware write, one row or many: GORM would write nothing
// for it, and the caller would believe it written.
func TestValuesNamingAFieldThatIsNoColumnAreRefused(t *testing.T) {
	var cases []invCase
	for _, key := range []string{"note", "Note"} {
		values := map[string]any{"qty": 5, key: "x"}
		cases = append(cases, []invCase{
			{"UpdateSafely one row " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return optlock.UpdateSafely(db, &r.acc[0], values)
			}, "leave it out"},
			{"UpdateSafely many rows " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return optlock.UpdateSafely(db, &r.acc, values)
			}, "leave it out"},
			{"WithLock one row " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Scopes(optlock.WithLock()).Model(&r.acc[0]).Updates(values)
			}, "leave it out"},
			{"WithLock many rows " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Scopes(optlock.WithLock()).Model(&r.acc).Updates(values)
			}, "leave it out"},
			{"guarded one row " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc[0]).Updates(values)
			}, "leave it out"},
			{"guarded many rows " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc).Updates(values)
			}, "leave it out"},
			{"guarded Update " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc[0]).Update(key, "x")
			}, "leave it out"},
			{"guarded UpdateColumns " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&r.acc).UpdateColumns(values)
			}, "leave it out"},
			{"guarded without read rows " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Model(&InvAccount{}).Where("qty = ?", 10).Updates(values)
			}, "leave it out"},
			{"Unchecked " + key, true, func(db *gorm.DB, r *invRows) *gorm.DB {
				return db.Scopes(optlock.Unchecked()).Model(&InvAccount{ID: r.acc[0].ID}).Updates(values)
			}, "leave it out"},
			{"UpdateEach " + key, false, func(db *gorm.DB, r *invRows) *gorm.DB {
				return optlock.UpdateEach(db, &r.acc, key)
			}, "has no column"},
		}...)
	}
	runRefusals(t, cases)
}

// TestSettingALockFieldByHandIsRefused: values that would set a lock field to anything but what the
// rows written were read with are refused, in a map or in a struct, on one row or many, with read
// rows or without: the plugin would otherwise drop the value without a word.
func TestSettingALockFieldByHandIsRefused(t *testing.T) {
	v99 := map[string]any{"version": 99}
	runRefusals(t, []invCase{
		{"Updates(&struct)", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).Updates(&InvAccount{Version: 99})
		}, "values set the lock field"},
		{"Updates(struct)", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).Updates(InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"Updates(map)", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).Updates(v99)
		}, "values set the lock field"},
		{"Updates(map) by Go name", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).Updates(map[string]any{"qty": 5, "Version": 99})
		}, "values set the lock field"},
		{"Update", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).Update("version", 99)
		}, "values set the lock field"},
		{"UpdateColumn", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).UpdateColumn("version", 99)
		}, "values set the lock field"},
		{"UpdateColumns(map)", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).UpdateColumns(map[string]any{"qty": 5, "version": 99})
		}, "values set the lock field"},
		{"UpdateColumns(struct)", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).UpdateColumns(InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"a copy of the read row with another version", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			edited := r.acc[0]
			edited.Qty, edited.Version = 5, 7
			return db.Model(&r.acc[0]).Updates(edited)
		}, "values set the lock field"},
		{"Select naming the version of a zero struct", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc[0]).Select("qty", "version").Updates(InvAccount{Qty: 5})
		}, "values set the lock field"},
		{"Updates(struct) on many rows", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&r.acc).Updates(InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"UpdateSafely struct", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(db, &r.acc[0], InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"UpdateSafely struct on many rows", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(db, &r.acc, &InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"without read rows, struct", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&InvAccount{}).Where("qty = ?", 10).Updates(InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"without read rows, the model as values", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Where("qty = ?", 10).Updates(&InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"without read rows, map", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Model(&InvAccount{}).Where("qty = ?", 10).Update("version", 0)
		}, "values set the lock field"},
		{"Unchecked", true, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Scopes(optlock.Unchecked()).Model(&InvAccount{ID: r.acc[0].ID}).Updates(InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"WithLock, not guarded", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return db.Scopes(optlock.WithLock()).Model(&r.acc[0]).Updates(InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
		{"UpdateSafely, not guarded", false, func(db *gorm.DB, r *invRows) *gorm.DB {
			return optlock.UpdateSafely(db, &r.acc, InvAccount{Qty: 5, Version: 99})
		}, "values set the lock field"},
	})
}

// TestTheLockValueReadIsNotSetByHand: a struct that is the row read, or a copy of it, carries the
// lock value it was read with: that is what the write is checked against, not a value set by hand.
// Such writes, and structs that leave the lock field zero, go through and advance the lock.
func TestTheLockValueReadIsNotSetByHand(t *testing.T) {
	writes := []struct {
		name    string
		guarded bool
		write   func(db *gorm.DB, acc *InvAccount) *gorm.DB
	}{
		{"Save", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB { acc.Qty = 5; return db.Save(acc) }},
		{"Model(&row).Updates(&row)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			acc.Qty = 5
			return db.Model(acc).Updates(acc)
		}},
		{"Updates(&row)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB { acc.Qty = 5; return db.Updates(acc) }},
		{"Updates(copy of the row)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			edited := *acc
			edited.Qty = 5
			return db.Model(acc).Updates(edited)
		}},
		{"Select(*).Updates(copy of the row)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			edited := *acc
			edited.Qty = 5
			return db.Model(acc).Select("*").Updates(edited)
		}},
		{"UpdateColumns(copy of the row)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			edited := *acc
			edited.Qty = 5
			return db.Model(acc).UpdateColumns(edited)
		}},
		{"Updates(struct without version)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			return db.Model(acc).Updates(InvAccount{Qty: 5})
		}},
		{"UpdateSafely(&row, copy of the row)", true, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			edited := *acc
			edited.Qty = 5
			return optlock.UpdateSafely(db, acc, edited)
		}},
		{"UpdateSafely(&row, &row)", false, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			acc.Qty = 5
			return optlock.UpdateSafely(db, acc, acc)
		}},
		{"WithLock Updates(copy of the row)", false, func(db *gorm.DB, acc *InvAccount) *gorm.DB {
			edited := *acc
			edited.Qty = 5
			return db.Scopes(optlock.WithLock()).Model(acc).Updates(edited)
		}},
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			plain := openConfigured(t, d, &gorm.Config{}, []any{&InvAccount{}, &InvFlagged{}})
			guarded := openCaller(t, d, plain.observer, &gorm.Config{}, nil, optlock.Guard(&InvAccount{}))
			for _, w := range writes {
				t.Run(w.name, func(t *testing.T) {
					c := plain
					if w.guarded {
						c = guarded
					}
					recreate(t, c.observer, &InvAccount{}, &InvFlagged{})
					acc := seedInvRows(t, c).acc[0]
					stale := acc

					require.NoError(t, w.write(c.db, &acc).Error)
					assert.EqualValues(t, 2, acc.Version, "advanced in memory")
					stored := storedInvRows(t, c).acc[0]
					assert.Equal(t, 5, stored.Qty)
					assert.EqualValues(t, 2, stored.Version)
					c.requireIdle(t)

					requireConflict(t, w.write(c.db, &stale).Error, acc.ID)
					assert.EqualValues(t, 2, storedInvRows(t, c).acc[0].Version, "the stale write changed nothing")
					c.requireIdle(t)
				})
			}
		})
	}
}

// TestGuardedWritesWithoutReadRowsStillAdvanceWithZeroLockValues: a struct that leaves the lock field
// zero sets nothing by hand, also on a write without read rows.
func TestGuardedWritesWithoutReadRowsStillAdvanceWithZeroLockValues(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&InvAccount{}, &InvFlagged{}}, optlock.Guard(&InvAccount{}))
			r := seedInvRows(t, c)

			res := c.db.Model(&InvAccount{}).Where("qty = ?", 10).Updates(InvAccount{Qty: 5})
			require.NoError(t, res.Error)
			assert.EqualValues(t, 3, res.RowsAffected)
			require.NoError(t, c.db.Scopes(optlock.Unchecked()).Model(&InvAccount{ID: r.acc[0].ID}).Updates(InvAccount{Qty: 6}).Error)
			stored := storedInvRows(t, c).acc
			assert.Equal(t, []int64{3, 2, 2}, []int64{stored[0].Version, stored[1].Version, stored[2].Version})
			assert.Equal(t, []int{6, 5, 5}, []int{stored[0].Qty, stored[1].Qty, stored[2].Qty})
			c.requireIdle(t)
		})
	}
}

// TestATimestampLockSetByHandIsRefused: the same rule for an updated_at lock. GORM's Updates sets an
// autoUpdateTime field to now whatever the struct holds, so only UpdateColumns (no hooks) would write
// the struct's value: there a time other than the one read is refused, the one read goes through.
func TestATimestampLockSetByHandIsRefused(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			c := openConfigured(t, d, &gorm.Config{}, []any{&CfgStamp{}}, optlock.Guard(&CfgStamp{}))
			require.NoError(t, c.observer.Create(&CfgStamp{Body: "a"}).Error)
			var read CfgStamp
			require.NoError(t, c.db.First(&read).Error)
			stored := func() CfgStamp {
				var s CfgStamp
				require.NoError(t, c.observer.First(&s, read.ID).Error)
				return s
			}
			before := stored()

			past := read
			past.Body, past.UpdatedAt = "b", read.UpdatedAt.Add(-time.Hour)
			err := c.db.Model(&read).UpdateColumns(past).Error
			require.ErrorIs(t, err, optlock.ErrInvalidLock)
			assert.ErrorContains(t, err, `values set the lock field "UpdatedAt"`)
			assert.Equal(t, before, stored(), "nothing written")
			c.requireIdle(t)

			require.NoError(t, c.db.Model(&read).Updates(past).Error, "Updates sets updated_at to now itself")
			assert.Equal(t, "b", stored().Body)
			asRead := read
			asRead.Body = "c"
			require.NoError(t, c.db.Model(&read).UpdateColumns(asRead).Error)
			after := stored()
			assert.Equal(t, "c", after.Body)
			assert.True(t, after.UpdatedAt.After(before.UpdatedAt), "the lock advanced: %v then %v", before.UpdatedAt, after.UpdatedAt)
			c.requireIdle(t)
		})
	}
}
