package tests

import (
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// goldenBulkCases are UpdateSafely's writes of many rows: PostgreSQL's integer arrays and VALUES
// lists with the key-order lock, SQLite's JSON join and VALUES list, MySQL's row-value IN, and the
// chunks a bind-variable limit splits them into. The rows are given out of key order.
var goldenBulkCases = []goldenCase{
	{
		name: "bulk_version", doc: "UpdateSafely of three rows, integer key and version",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(3, 1, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "bulk_updated_at", doc: "UpdateSafely of three rows locked by updated_at",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenDocs(3, 1, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"title": "x"})
		},
	},
	{
		name: "bulk_wall_clock", doc: "UpdateSafely of three rows whose updated_at is a PostgreSQL timestamp without time zone or a MySQL datetime(0)",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := []GoldenEvent{{ID: 3, UpdatedAt: goldenRead(3)}, {ID: 1, UpdatedAt: goldenRead(1)}, {ID: 2, UpdatedAt: goldenRead(2)}}
			return optlock.UpdateSafely(db, &rows, map[string]any{"name": "x"})
		},
	},
	{
		name: "bulk_composite_key", doc: "UpdateSafely of three rows with a two-column integer key",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenLines(3, 1, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "bulk_string_key", doc: "UpdateSafely of three rows with a string key (PostgreSQL: a VALUES list, not arrays)",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := []GoldenCode{{Code: "c", Version: 1}, {Code: "a", Version: 2}, {Code: "b", Version: 3}}
			return optlock.UpdateSafely(db, &rows, map[string]any{"name": "x"})
		},
	},
	{
		name: "bulk_two_locks", doc: "UpdateSafely of two rows checked on a version and an updated_at (WithLock naming both)",
		script: goldenAffected(2),
		write: func(db *gorm.DB) *gorm.DB {
			rows := []GoldenStamped{{ID: 2, Version: 4, UpdatedAt: goldenRead(2)}, {ID: 1, Version: 0, UpdatedAt: goldenRead(1)}}
			return optlock.UpdateSafely(db.Scopes(optlock.WithLock("version", "updated_at")), &rows, map[string]any{"body": "x"})
		},
	},
	{
		name: "bulk_caller_conditions", doc: "UpdateSafely of three rows with the caller's Where (SQLite: joined, the condition beside it)",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(3, 1, 2)
			return optlock.UpdateSafely(db.Where("qty > ?", 0), &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "bulk_chunked_version", doc: "UpdateSafely of five rows, integer version, at most 6 bind variables a statement (only MySQL splits: arrays and JSON bind a fixed number)",
		opts:   []optlock.Option{optlock.WithBindVarLimit(6)},
		script: goldenScripted(map[string][]int64{"": {5}, "mysql": {2, 2, 1}}, nil),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(5, 3, 1, 4, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"qty": 0})
		},
	},
	{
		name: "bulk_chunked_updated_at", doc: "UpdateSafely of five rows locked by updated_at, at most 8 bind variables a statement: split on every dialect, in key order",
		opts:   []optlock.Option{optlock.WithBindVarLimit(8)},
		script: goldenScripted(map[string][]int64{"": {2, 2, 1}, "mysql": {3, 2}}, nil),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenDocs(5, 3, 1, 4, 2)
			return optlock.UpdateSafely(db, &rows, map[string]any{"title": "x"})
		},
	},
}
