package tests

import (
	"time"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// goldenConflictCases are refused writes: the fake reports fewer rows affected than rows given, and
// the plugin reads the rows back (a plain SELECT of the keys; on SQLite, for one integer key and
// version, a query that compares in SQL and returns only the refused rows).
var goldenConflictCases = []goldenCase{
	{
		name: "conflict_single", doc: "a refused WithLock Updates of one row: its row read back after GORM's rollback",
		script: goldenScripted(map[string][]int64{"": {0}}, goldenReads{"": {readBack(stored(int64(1), int64(4)))}}),
		write: func(db *gorm.DB) *gorm.DB {
			item := goldenItems(1)[0]
			return db.Scopes(optlock.WithLock()).Model(&item).Updates(map[string]any{"qty": 7})
		},
	},
	{
		name: "conflict_bulk", doc: "a refused UpdateSafely of three rows (2 changed, 3 gone)",
		script: goldenScripted(map[string][]int64{"": {2}}, goldenReads{
			"":       {readBack(stored(int64(1), int64(3)), stored(int64(2), int64(9)))},
			"sqlite": {readBack(stored(int64(2), int64(9), int64(1)), stored(int64(3), nil, int64(0)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(3, 1, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "conflict_bulk_updated_at", doc: "a refused UpdateSafely of three rows locked by updated_at (2 changed, 3 gone)",
		script: goldenScripted(map[string][]int64{"": {2}}, goldenReads{
			"": {readBack(stored(int64(1), goldenRead(1)), stored(int64(2), goldenRead(2).Add(time.Hour)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenDocs(3, 1, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"title": "x"})
		},
	},
	{
		name: "conflict_bulk_composite_key", doc: "a refused UpdateSafely of two rows with a two-column key (line 2 gone)",
		script: goldenScripted(map[string][]int64{"": {1}}, goldenReads{
			"": {readBack(stored(int64(7), int64(1), int64(3)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenLines(2, 1)
			return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "conflict_bulk_soft_delete", doc: "a refused UpdateSafely of three soft-deletable rows (2 soft-deleted, 3 gone)",
		script: goldenScripted(map[string][]int64{"": {1}}, goldenReads{
			"":       {readBack(stored(int64(1), int64(3), nil), stored(int64(2), int64(4), goldenRead(9)))},
			"sqlite": {readBack(stored(int64(2), int64(4), goldenRead(9), int64(1)), stored(int64(3), nil, nil, int64(0)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenNotes(3, 1, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"body": "x"})
		},
	},
	{
		name: "conflict_bulk_chunked", doc: "a refused UpdateSafely of five rows at most 4 bind variables a statement: split writes (MySQL) and split read-backs (4 changed, 2 gone)",
		opts: []optlock.Option{optlock.WithBindVarLimit(4)},
		script: goldenScripted(map[string][]int64{"": {4}, "mysql": {1, 1, 1, 1, 0}}, goldenReads{
			"": {
				readBack(stored(int64(5), int64(7)), stored(int64(3), int64(5)), stored(int64(1), int64(3)), stored(int64(4), int64(10))),
				nil,
			},
			"sqlite": {readBack(stored(int64(4), int64(10), int64(1)), stored(int64(2), nil, int64(0)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(5, 3, 1, 4, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 0})
		},
	},
}
