package tests

import (
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// goldenEachCases are UpdateEach's writes: PostgreSQL's VALUES list with the key-order lock,
// SQLite's VALUES sub-select, MySQL's derived table. The rows are given out of key order, each
// changed in memory after it was read.
var goldenEachCases = []goldenCase{
	{
		name: "each_default_columns", doc: "UpdateEach of three rows, the default columns",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := editedItems(3, 1, 2)
			return optlock.UpdateEach(db, &rows)
		},
	},
	{
		name: "each_explicit_columns", doc: "UpdateEach of three rows, one column named",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := editedItems(3, 1, 2)
			return optlock.UpdateEach(db, &rows, "qty")
		},
	},
	{
		name: "each_updated_at", doc: "UpdateEach of three rows locked by updated_at",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenDocs(3, 1, 2)
			for i := range rows {
				rows[i].Title += " edited"
			}
			return optlock.UpdateEach(db, &rows)
		},
	},
	{
		name: "each_composite_key", doc: "UpdateEach of three rows with a two-column key",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenLines(3, 1, 2)
			for i := range rows {
				rows[i].Qty += 100
			}
			return optlock.UpdateEach(db, &rows)
		},
	},
	{
		name: "each_soft_delete", doc: "UpdateEach of three soft-deletable rows (deleted rows are not written)",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenNotes(3, 1, 2)
			for i := range rows {
				rows[i].Body += " edited"
			}
			return optlock.UpdateEach(db, &rows)
		},
	},
	{
		name: "each_chunked", doc: "UpdateEach of five rows at most 10 bind variables a statement: split in key order",
		opts:   []optlock.Option{optlock.WithBindVarLimit(10)},
		script: goldenScripted(map[string][]int64{"": {2, 2, 1}, "postgres": {1, 1, 1, 1, 1}}, nil),
		write: func(db *gorm.DB) *gorm.DB {
			rows := editedItems(5, 3, 1, 4, 2)
			return optlock.UpdateEach(db, &rows)
		},
	},
	{
		name: "each_conflict", doc: "a refused UpdateEach of three rows (2 changed, 3 gone)",
		script: goldenScripted(map[string][]int64{"": {2}}, goldenReads{
			"":       {readBack(stored(int64(1), int64(3)), stored(int64(2), int64(9)))},
			"sqlite": {readBack(stored(int64(2), int64(9), int64(1)), stored(int64(3), nil, int64(0)))},
		}),
		write: func(db *gorm.DB) *gorm.DB {
			rows := editedItems(3, 1, 2)
			return optlock.UpdateEach(db, &rows)
		},
	},
}

// editedItems are goldenItems changed in memory after they were read.
func editedItems(ids ...uint) []GoldenItem {
	rows := goldenItems(ids...)
	for i := range rows {
		rows[i].Name += " edited"
		rows[i].Qty++
	}
	return rows
}
