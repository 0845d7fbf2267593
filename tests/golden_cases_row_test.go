package tests

import (
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// goldenRowCases are the writes of one row (the single-row predicate) and the deletes.
var goldenRowCases = []goldenCase{
	{
		name: "updates_version", doc: "WithLock Updates of one row, integer version",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			item := GoldenItem{ID: 1, Name: "a", Qty: 1, Version: 3}
			return db.Scopes(optlock.WithLock()).Model(&item).Updates(map[string]any{"qty": 7})
		},
	},
	{
		name: "updates_updated_at", doc: "WithLock Updates of one row, updated_at timestamp",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			doc := goldenDocs(1)[0]
			return db.Scopes(optlock.WithLock()).Model(&doc).Updates(map[string]any{"title": "b"})
		},
	},
	{
		name: "updates_composite_key", doc: "WithLock Updates of one row with a two-column key",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			line := goldenLines(2)[0]
			return db.Scopes(optlock.WithLock()).Model(&line).Updates(map[string]any{"qty": 5})
		},
	},
	{
		name: "updates_wall_clock", doc: "WithLock Updates of one row whose updated_at is a PostgreSQL timestamp without time zone (the time-binding probe) or a MySQL datetime(0)",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			event := GoldenEvent{ID: 1, Name: "a", UpdatedAt: goldenRead(1)}
			return db.Scopes(optlock.WithLock()).Model(&event).Updates(map[string]any{"name": "b"})
		},
	},
	{
		name: "updates_unix_milli", doc: "WithLock Updates of one row locked by a Unix time in milliseconds",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			tick := GoldenTick{ID: 1, Name: "a", UpdatedAt: 1772593200500}
			return db.Scopes(optlock.WithLock()).Model(&tick).Updates(map[string]any{"name": "b"})
		},
	},
	{
		name: "updates_caller_conditions", doc: "WithLock Updates of one row with the caller's Where and Or, bracketed before the check",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			item := GoldenItem{ID: 1, Name: "a", Qty: 1, Version: 3}
			return db.Scopes(optlock.WithLock()).Model(&item).Where("qty > ?", 0).Or("name = ?", "a").Updates(map[string]any{"qty": 7})
		},
	},
	{
		name: "updates_guarded", doc: "Updates of one row of a guarded model, without WithLock",
		opts:   []optlock.Option{optlock.Guard(&GoldenItem{})},
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			item := GoldenItem{ID: 1, Name: "a", Qty: 1, Version: 3}
			return db.Model(&item).Update("qty", 7)
		},
	},
	{
		name: "save", doc: "WithLock Save of one row",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			item := GoldenItem{ID: 1, Name: "renamed", Qty: 1, Version: 3}
			return db.Scopes(optlock.WithLock()).Save(&item)
		},
	},
	{
		name: "save_new_row", doc: "WithLock Save of a row that is not there yet, its lock zero: the UPDATE matches nothing, the read-back finds no row, and a plain INSERT follows",
		script: goldenAffected(0, 1),
		write: func(db *gorm.DB) *gorm.DB {
			item := GoldenItem{ID: 9, Name: "new", Qty: 1}
			return db.Scopes(optlock.WithLock()).Save(&item)
		},
	},
	{
		name: "delete_one", doc: "WithLock Delete of one row",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			item := goldenItems(1)[0]
			return db.Scopes(optlock.WithLock()).Delete(&item)
		},
	},
	{
		name: "delete_slice", doc: "WithLock Delete of three rows (SQLite: the JSON object in WHERE)",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenItems(3, 1, 2)
			return db.Scopes(optlock.WithLock()).Delete(&rows)
		},
	},
	{
		name: "delete_slice_updated_at", doc: "WithLock Delete of three rows locked by updated_at",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenDocs(3, 1, 2)
			return db.Scopes(optlock.WithLock()).Delete(&rows)
		},
	},
	{
		name: "delete_soft_one", doc: "WithLock soft Delete of one row",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			note := goldenNotes(1)[0]
			return db.Scopes(optlock.WithLock()).Delete(&note)
		},
	},
	{
		name: "delete_soft_slice", doc: "WithLock soft Delete of three rows",
		script: goldenAffected(3),
		write: func(db *gorm.DB) *gorm.DB {
			rows := goldenNotes(3, 1, 2)
			return db.Scopes(optlock.WithLock()).Delete(&rows)
		},
	},
}
