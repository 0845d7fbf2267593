package tests

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/go-optlock/optlock"
)

// goldenBlindCases are writes of a guarded model that carry no rows read, which cannot be checked and
// advance the lock instead: by a query, of the table without its model, Unchecked, and the upserts
// that advance it in DO UPDATE.
var goldenBlindCases = []goldenCase{
	{
		name: "blind_version", doc: "a guarded model written by a query: the version advanced",
		opts:   []optlock.Option{optlock.Guard(&GoldenItem{})},
		script: goldenAffected(4),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Model(&GoldenItem{}).Where("qty > ?", 5).Updates(map[string]any{"name": "x"})
		},
	},
	{
		name: "blind_updated_at", doc: "a guarded model written by a query: updated_at advanced strictly past what is stored",
		opts:   []optlock.Option{optlock.Guard(&GoldenDoc{})},
		script: goldenAffected(4),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Model(&GoldenDoc{}).Where("title = ?", "a").Update("title", "b")
		},
	},
	{
		name: "blind_wall_clock", doc: "a guarded model written by a query, its updated_at a PostgreSQL timestamp without time zone or a MySQL datetime(0)",
		opts:   []optlock.Option{optlock.Guard(&GoldenEvent{})},
		script: goldenAffected(4),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Model(&GoldenEvent{}).Where("name = ?", "a").Update("name", "b")
		},
	},
	{
		name: "blind_unix_milli", doc: "a guarded model written by a query: a Unix-milliseconds lock advanced",
		opts:   []optlock.Option{optlock.Guard(&GoldenTick{})},
		script: goldenAffected(4),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Model(&GoldenTick{}).Where("name = ?", "a").Update("name", "b")
		},
	},
	{
		name: "blind_table", doc: "a guarded table written without its model: the version advanced",
		opts:   []optlock.Option{optlock.Guard(&GoldenItem{})},
		script: goldenAffected(4),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Table("golden_items").Where("qty > ?", 5).Updates(map[string]any{"qty": 0})
		},
	},
	{
		name: "unchecked_by_key", doc: "an Unchecked write of one row by its key: the version advanced, not checked",
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			item := goldenItems(1)[0]
			return db.Scopes(optlock.Unchecked()).Model(&item).Updates(map[string]any{"qty": 1})
		},
	},
	{
		name: "upsert_version", doc: "a guarded upsert of named columns: the version advanced in DO UPDATE",
		opts:   []optlock.Option{optlock.Guard(&GoldenItem{})},
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"name"})}).
				Create(&GoldenItem{ID: 1, Name: "x", Qty: 1})
		},
	},
	{
		name: "upsert_updated_at", doc: "a guarded upsert of named columns: updated_at advanced in DO UPDATE",
		opts:   []optlock.Option{optlock.Guard(&GoldenDoc{})},
		script: goldenAffected(1),
		write: func(db *gorm.DB) *gorm.DB {
			return db.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "id"}}, DoUpdates: clause.AssignmentColumns([]string{"title"})}).
				Create(&GoldenDoc{ID: 1, Title: "x"})
		},
	},
}
