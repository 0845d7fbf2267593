package tests

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// ReviewShard is an integer a driver.Valuer stores scaled (shard n is stored as n*10): an integer
// kind whose stored value is not its Go integer.
type ReviewShard int

func (s ReviewShard) Value() (driver.Value, error) { return int64(s) * 10, nil }

func (s *ReviewShard) Scan(src any) error {
	n, ok := src.(int64)
	if !ok {
		return fmt.Errorf("ReviewShard: cannot scan %T", src)
	}
	*s = ReviewShard(n / 10)
	return nil
}

// ReviewSharded is keyed by (shard, id): the same id exists in every shard.
type ReviewSharded struct {
	Shard   ReviewShard `gorm:"primaryKey;autoIncrement:false"`
	ID      int64       `gorm:"primaryKey;autoIncrement:false"`
	Qty     int
	Version int64
}

func (ReviewSharded) TableName() string { return "review_shardeds" }

// ReviewSKU is an integer key a driver.Valuer stores as text ("SKU-5").
type ReviewSKU int64

func (s ReviewSKU) Value() (driver.Value, error) {
	return "SKU-" + strconv.FormatInt(int64(s), 10), nil
}

func (s *ReviewSKU) Scan(src any) error {
	var text string
	switch v := src.(type) {
	case string:
		text = v
	case []byte:
		text = string(v)
	default:
		return fmt.Errorf("ReviewSKU: cannot scan %T", src)
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(text, "SKU-"), 10, 64)
	*s = ReviewSKU(n)
	return err
}

// ReviewProduct is keyed by a ReviewSKU stored as text.
type ReviewProduct struct {
	SKU     ReviewSKU `gorm:"primaryKey;autoIncrement:false;type:varchar(32)"`
	Qty     int
	Version int64
}

func (ReviewProduct) TableName() string { return "review_products" }

// A key of an integer kind that is a driver.Valuer is stored as whatever Value() returns: the bulk
// forms that send keys as numbers (MySQL's literals, PostgreSQL's int arrays, SQLite's JSON rows)
// must bind it instead (isIntegerKey). Sent as its Go integer, writing the rows of shard 10 (stored
// as 100) checked "shard = 10", the rows of shard 1, and wrote those instead (a hostile review found
// it in the literal form on its first day).
func TestReviewBulkWriteOfValuerIntegerKeysWritesOnlyTheRowsPassed(t *testing.T) {
	eachDB(t, []any{&ReviewSharded{}}, func(t *testing.T, db *gorm.DB) {
		seed := []ReviewSharded{
			{Shard: 1, ID: 1, Version: 1}, {Shard: 1, ID: 2, Version: 1},
			{Shard: 10, ID: 1, Version: 1}, {Shard: 10, ID: 2, Version: 1},
		}
		require.NoError(t, db.Create(&seed).Error)

		ten := []ReviewSharded{seed[2], seed[3]}
		res := optlock.UpdateSafely(db, &ten, map[string]any{"qty": 5})
		require.NoError(t, res.Error)
		assert.EqualValues(t, 2, res.RowsAffected, "rows written")

		var stored []ReviewSharded
		require.NoError(t, db.Order("shard, id").Find(&stored).Error)
		assert.Equal(t, []ReviewSharded{
			{Shard: 1, ID: 1, Version: 1}, {Shard: 1, ID: 2, Version: 1},
			{Shard: 10, ID: 1, Qty: 5, Version: 2}, {Shard: 10, ID: 2, Qty: 5, Version: 2},
		}, stored, "shard 10's rows written, shard 1's untouched")
	})
}

// The same with a key stored as text ("SKU-5"): sent as a number, every bulk write of such rows
// failed although nobody else wrote them (MySQL: Error 1292 "Truncated incorrect DECIMAL value";
// PostgreSQL: "operator does not exist: character varying = bigint"; SQLite: a false conflict).
func TestReviewBulkWriteOfValuerIntegerKeysIsNoConflict(t *testing.T) {
	eachDB(t, []any{&ReviewProduct{}}, func(t *testing.T, db *gorm.DB) {
		rows := []ReviewProduct{{SKU: 5, Version: 1}, {SKU: 6, Version: 1}}
		require.NoError(t, db.Create(&rows).Error)

		res := optlock.UpdateSafely(db, &rows, map[string]any{"qty": 3})
		require.NoError(t, res.Error, "bulk write of rows nobody else changed")

		var stored []ReviewProduct
		require.NoError(t, db.Order("sku").Find(&stored).Error)
		assert.Equal(t, []ReviewProduct{{SKU: 5, Qty: 3, Version: 2}, {SKU: 6, Qty: 3, Version: 2}}, stored)
	})
}
