package tests

import (
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// goldenTxCases are writes inside the caller's transaction (the plugin's savepoints, and the
// catalog read and conflict read-back under savepoints of their own on PostgreSQL), and in a session
// without GORM's default transaction (the plugin's own transaction).
var goldenTxCases = []goldenCase{
	{
		name: "tx_updates_version", doc: "WithLock Updates of one row inside the caller's transaction", callerTx: true,
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				item := goldenItems(1)[0]
				return tx.Scopes(optlock.WithLock()).Model(&item).Updates(map[string]any{"qty": 7})
			})
		},
	},
	{
		name: "tx_updates_hooked", doc: "WithLock Updates of one row with a BeforeUpdate hook inside the caller's transaction: a savepoint", callerTx: true,
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				row := GoldenHooked{ID: 1, Name: "a", Version: 3}
				return tx.Scopes(optlock.WithLock()).Model(&row).Updates(map[string]any{"name": "b"})
			})
		},
	},
	{
		name: "tx_bulk_version", doc: "UpdateSafely of three rows inside the caller's transaction: a savepoint", callerTx: true,
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				rows := goldenItems(3, 1, 2)
				return optlock.UpdateSafely(tx, &rows, map[string]any{"qty": 0})
			})
		},
	},
	{
		name: "tx_bulk_conflict", doc: "a refused UpdateSafely of three rows inside the caller's transaction: rolled back to the savepoint, then read back (2 changed, 3 gone)", callerTx: true,
		script: goldenScripted(map[string][]int64{"": {2}}, goldenReads{
			"":       {readBack(stored(int64(1), int64(3)), stored(int64(2), int64(9)))},
			"sqlite": {readBack(stored(int64(2), int64(9), int64(1)), stored(int64(3), nil, int64(0)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, false, func(tx *gorm.DB) *gorm.DB {
				rows := goldenItems(3, 1, 2)
				return optlock.UpdateSafely(tx, &rows, map[string]any{"qty": 0})
			})
		},
	},
	{
		name: "tx_conflict_single", doc: "a refused WithLock Updates of one row inside the caller's transaction: read back at once", callerTx: true,
		script: goldenScripted(map[string][]int64{"": {0}}, goldenReads{"": {readBack(stored(int64(1), int64(4)))}}),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, false, func(tx *gorm.DB) *gorm.DB {
				item := goldenItems(1)[0]
				return tx.Scopes(optlock.WithLock()).Model(&item).Updates(map[string]any{"qty": 7})
			})
		},
	},
	{
		name: "tx_each", doc: "UpdateEach of three rows inside the caller's transaction: a savepoint", callerTx: true,
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				rows := editedItems(3, 1, 2)
				return optlock.UpdateEach(tx, &rows)
			})
		},
	},
	{
		name: "tx_delete_slice", doc: "WithLock Delete of three rows inside the caller's transaction: a savepoint", callerTx: true,
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				rows := goldenItems(3, 1, 2)
				return tx.Scopes(optlock.WithLock()).Delete(&rows)
			})
		},
	},
	{
		name: "tx_updates_wall_clock", doc: "WithLock Updates of one row inside the caller's transaction, its updated_at a PostgreSQL timestamp without time zone (probed on the transaction) or a MySQL datetime(0)", callerTx: true,
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				event := GoldenEvent{ID: 1, Name: "a", UpdatedAt: goldenRead(1)}
				return tx.Scopes(optlock.WithLock()).Model(&event).Updates(map[string]any{"name": "b"})
			})
		},
	},
	{
		name: "tx_catalog_unreadable", doc: "WithLock Updates of one row inside the caller's transaction when the catalog read fails (PostgreSQL: rolled back to its savepoint): the migrator's types are used", callerTx: true,
		script: func(string) goldenScript { return goldenScript{affected: []int64{1}, catalogFails: true} },
		write: func(db *gorm.DB) *gorm.DB {
			return inCallersTx(db, true, func(tx *gorm.DB) *gorm.DB {
				event := GoldenEvent{ID: 1, Name: "a", UpdatedAt: goldenRead(1)}
				return tx.Scopes(optlock.WithLock()).Model(&event).Updates(map[string]any{"name": "b"})
			})
		},
	},
	{
		name: "own_tx_bulk", doc: "UpdateSafely of three rows in a session without GORM's default transaction: the plugin's own",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(3, 1, 2)
			return optlock.UpdateSafely(db.Session(&gorm.Session{SkipDefaultTransaction: true}), &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "own_tx_bulk_conflict", doc: "a refused UpdateSafely of three rows in a session without GORM's default transaction: the plugin's own rolled back, then read back (2 changed, 3 gone)",
		script: goldenScripted(map[string][]int64{"": {2}}, goldenReads{
			"":       {readBack(stored(int64(1), int64(3)), stored(int64(2), int64(9)))},
			"sqlite": {readBack(stored(int64(2), int64(9), int64(1)), stored(int64(3), nil, int64(0)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(3, 1, 2)
			return optlock.UpdateSafely(db.Session(&gorm.Session{SkipDefaultTransaction: true}), &rows, map[string]any{"qty": 0})
		},
	},
}

// inCallersTx runs write inside a transaction of the caller's, then commits it (or rolls it back),
// and returns the write's result.
func inCallersTx(db *gorm.DB, commit bool, write func(tx *gorm.DB) *gorm.DB) *gorm.DB {
	tx := db.Begin()
	if tx.Error != nil {
		return tx
	}
	res := write(tx)
	if commit {
		tx.Commit()
	} else {
		tx.Rollback()
	}
	return res
}
