package tests

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// Every bad input ends in an error wrapping ErrInvalidLock: no panic, no write, never a conflict.
func TestBadInputGetsAClearErrorAndWritesNothing(t *testing.T) {
	eachDB(t, []any{&Item{}, &Tag{}}, func(t *testing.T, db *gorm.DB) {
		items := seedItems(t, db, 3)
		tag := Tag{Name: "t"}
		require.NoError(t, db.Create(&tag).Error)
		values := map[string]any{"qty": 0}
		item := items[0]
		withLock := func(fields ...string) *gorm.DB { return db.Scopes(optlock.WithLock(fields...)) }

		cases := []struct {
			name  string
			write func() *gorm.DB
			want  string // part of the message that tells the user what is wrong
		}{
			{"unknown field", func() *gorm.DB { return optlock.UpdateSafely(withLock("nope"), &item, values) }, `unknown lock field "nope"`},
			{"injection attempt", func() *gorm.DB {
				return optlock.UpdateSafely(withLock("qty; DROP TABLE core_items"), &item, values)
			}, "malformed lock field name"},
			{"empty field name", func() *gorm.DB { return optlock.UpdateSafely(withLock(""), &item, values) }, "empty lock field name"},
			{"field named twice", func() *gorm.DB { return optlock.UpdateSafely(withLock("version", "Version"), &item, values) }, "named twice"},
			{"string lock field", func() *gorm.DB { return optlock.UpdateSafely(withLock("name"), &item, values) }, "integer version or a time.Time"},
			{"primary key as lock field", func() *gorm.DB { return optlock.UpdateSafely(withLock("id"), &item, values) }, "primary key"},
			{"model without lock field", func() *gorm.DB { return optlock.UpdateSafely(db, &tag, map[string]any{"name": "x"}) }, "has no lock field"},
			{"nil model", func() *gorm.DB { return optlock.UpdateSafely(db, nil, values) }, "model is nil"},
			{"non-pointer model", func() *gorm.DB { return optlock.UpdateSafely(db, item, values) }, "not a pointer"},
			{"nil struct pointer", func() *gorm.DB { return optlock.UpdateSafely(db, (*Item)(nil), values) }, "nil *tests.Item"},
			{"pointer to int", func() *gorm.DB { n := 3; return optlock.UpdateSafely(db, &n, values) }, "pointer to a struct"},
			{"slice of ints", func() *gorm.DB { return optlock.UpdateSafely(db, &[]int{1}, values) }, "pointer to a struct"},
			{"zero primary key", func() *gorm.DB { return optlock.UpdateSafely(db, &Item{Qty: 1, Version: 1}, values) }, "zero primary key"},
			{"zero key in a slice", func() *gorm.DB {
				rows := []Item{items[0], {Qty: 1, Version: 1}}
				return optlock.UpdateSafely(db, &rows, values)
			}, "row 1 has a zero primary key"},
			{"nil row in a slice", func() *gorm.DB {
				rows := []*Item{&items[0], nil}
				return optlock.UpdateSafely(db, &rows, values)
			}, "row 1 of the model is nil"},
			{"duplicate keys", func() *gorm.DB {
				rows := []Item{items[0], items[1], items[0]}
				return optlock.UpdateSafely(db, &rows, values)
			}, "same primary key"},
			{"adjacent duplicate keys", func() *gorm.DB {
				rows := []Item{items[0], items[1], items[1]}
				return optlock.UpdateSafely(db, &rows, values)
			}, "rows 1 and 2 have the same primary key"},
			{"duplicate keys out of order", func() *gorm.DB {
				rows := []Item{items[1], items[0], items[1]}
				return optlock.UpdateSafely(db, &rows, values)
			}, "rows 0 and 2 have the same primary key"},
			{"nil values", func() *gorm.DB { return optlock.UpdateSafely(db, &item, nil) }, "values is nil"},
			{"int values", func() *gorm.DB { return optlock.UpdateSafely(db, &item, 42) }, "values is a int"},
			{"values set the lock field", func() *gorm.DB {
				return optlock.UpdateSafely(db, &item, map[string]any{"qty": 0, "version": 99})
			}, `values set the lock field "version"`},
			{"values with an unknown column", func() *gorm.DB {
				return optlock.UpdateSafely(db, &item, map[string]any{"qty` = 0, `version": 1})
			}, "not a field of model Item"},
			{"scope without a model", func() *gorm.DB {
				return withLock().Table("core_items").Where("id = ?", item.ID).Updates(values)
			}, "needs a model"},
			{"scope on a model without key", func() *gorm.DB {
				return withLock().Model(&Item{}).Where("id = ?", item.ID).Updates(values)
			}, "zero primary key"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := loadItems(t, db)
				var res *gorm.DB
				require.NotPanics(t, func() { res = tc.write() })
				require.Error(t, res.Error)
				assert.ErrorIs(t, res.Error, optlock.ErrInvalidLock)
				assert.NotErrorIs(t, res.Error, optlock.ErrConflict)
				assert.Contains(t, res.Error.Error(), tc.want)
				assert.Equal(t, before, loadItems(t, db), "nothing written")
				assert.Equal(t, items[0], item, "the model is untouched")
			})
		}
		require.True(t, db.Migrator().HasTable(&Item{}), "the table is still there")
		var tags []Tag
		require.NoError(t, db.Find(&tags).Error)
		assert.Equal(t, []Tag{tag}, tags)
	})
}

func TestWithoutThePluginRegisteredTheErrorSaysHowToRegister(t *testing.T) {
	eachDB(t, []any{&Item{}}, func(t *testing.T, db *gorm.DB) {
		item := seedItems(t, db, 1)[0]
		bare, err := gorm.Open(db.Dialector, &gorm.Config{Logger: db.Logger})
		require.NoError(t, err)
		if db.Dialector.Name() == "sqlite" {
			conn, _ := bare.DB()
			t.Cleanup(func() { _ = conn.Close() })
		}

		for _, res := range []*gorm.DB{
			optlock.UpdateSafely(bare, &item, map[string]any{"qty": 1}),
			bare.Scopes(optlock.WithLock()).Model(&item).Update("qty", 1),
		} {
			require.ErrorIs(t, res.Error, optlock.ErrInvalidLock)
			assert.Contains(t, res.Error.Error(), "db.Use(optlock.New())")
		}
		assert.Equal(t, 10, loadItems(t, db)[item.ID].Qty)
	})
}
