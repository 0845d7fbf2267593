package tests

import (
	"database/sql/driver"
	"time"

	"gorm.io/gorm"
)

// The golden tests' models. Their tables are never made: the fake driver answers the catalog reads
// for them as a server would for the tables GORM's migrator makes (goldenCatalog), and the dry runs
// find no server at all.

// GoldenItem is locked by an integer version.
type GoldenItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (GoldenItem) TableName() string { return "golden_items" }

// GoldenDoc is locked by its updated_at timestamp.
type GoldenDoc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt time.Time
}

func (GoldenDoc) TableName() string { return "golden_docs" }

// GoldenLine has a composite key of two integers.
type GoldenLine struct {
	OrderID uint `gorm:"primaryKey;autoIncrement:false"`
	LineNo  int  `gorm:"primaryKey;autoIncrement:false"`
	Qty     int
	Version int64
}

func (GoldenLine) TableName() string { return "golden_lines" }

// GoldenCode has a string key, which keeps PostgreSQL's bulk forms off integer arrays.
type GoldenCode struct {
	Code    string `gorm:"primaryKey;size:16"`
	Name    string
	Version int64
}

func (GoldenCode) TableName() string { return "golden_codes" }

// GoldenNote is soft-deletable.
type GoldenNote struct {
	ID        uint `gorm:"primaryKey"`
	Body      string
	Version   int64
	DeletedAt gorm.DeletedAt
}

func (GoldenNote) TableName() string { return "golden_notes" }

// GoldenStamped has both a version and an updated_at, to lock on both.
type GoldenStamped struct {
	ID        uint `gorm:"primaryKey"`
	Body      string
	Version   int64
	UpdatedAt time.Time
}

func (GoldenStamped) TableName() string { return "golden_stamped" }

// GoldenEvent's table was made by hand: on PostgreSQL its updated_at is a timestamp without time
// zone (a wall clock: the plugin probes how the pool binds a time), on MySQL a datetime of whole
// seconds.
type GoldenEvent struct {
	ID        uint `gorm:"primaryKey"`
	Name      string
	UpdatedAt time.Time
}

func (GoldenEvent) TableName() string { return "golden_events" }

// GoldenTick is locked by a Unix time in milliseconds that GORM sets on every update.
type GoldenTick struct {
	ID        uint `gorm:"primaryKey"`
	Name      string
	UpdatedAt int64 `gorm:"autoUpdateTime:milli"`
}

func (GoldenTick) TableName() string { return "golden_ticks" }

// GoldenHooked has a BeforeUpdate hook: hooks may write other rows, so even a one-row write gets a
// savepoint inside the caller's transaction.
type GoldenHooked struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Version int64
}

func (GoldenHooked) TableName() string { return "golden_hooked" }

// BeforeUpdate changes nothing; its presence is what counts.
func (*GoldenHooked) BeforeUpdate(*gorm.DB) error { return nil }

// goldenColumn is one column as the catalog reports it: PostgreSQL's type name and typmod, MySQL's
// data type and datetime precision (nil when the type has none).
type goldenColumn struct {
	name        string
	pgType      string
	pgTypmod    int64
	mysqlType   string
	mysqlDigits any
}

var (
	goldenID      = goldenColumn{"id", "int8", -1, "bigint", nil}
	goldenVersion = goldenColumn{"version", "int8", -1, "bigint", nil}
	goldenText    = func(name string) goldenColumn { return goldenColumn{name, "text", -1, "longtext", nil} }
	goldenInt     = func(name string) goldenColumn { return goldenColumn{name, "int8", -1, "bigint", nil} }
	goldenStamp   = func(name string) goldenColumn { return goldenColumn{name, "timestamptz", -1, "datetime", int64(3)} }
)

// goldenCatalog are the golden tables' columns as GORM's migrator makes them (GoldenEvent's by hand).
var goldenCatalog = map[string][]goldenColumn{
	"golden_items":   {goldenID, goldenText("name"), goldenInt("qty"), goldenVersion},
	"golden_docs":    {goldenID, goldenText("title"), goldenStamp("updated_at")},
	"golden_lines":   {goldenInt("order_id"), goldenInt("line_no"), goldenInt("qty"), goldenVersion},
	"golden_codes":   {{"code", "varchar", 20, "varchar", nil}, goldenText("name"), goldenVersion},
	"golden_notes":   {goldenID, goldenText("body"), goldenVersion, goldenStamp("deleted_at")},
	"golden_stamped": {goldenID, goldenText("body"), goldenVersion, goldenStamp("updated_at")},
	"golden_events":  {goldenID, goldenText("name"), {"updated_at", "timestamp", -1, "datetime", int64(0)}},
	"golden_ticks":   {goldenID, goldenText("name"), goldenInt("updated_at")},
	"golden_hooked":  {goldenID, goldenText("name"), goldenVersion},
}

// goldenCatalogRows answers a catalog read: PostgreSQL's names the table as its only variable (quoted),
// MySQL's as its second.
func goldenCatalogRows(dialect string, args []any) [][]driver.Value {
	table, _ := args[len(args)-1].(string)
	if dialect == "postgres" && len(table) > 1 {
		table = table[1 : len(table)-1]
	}
	var rows [][]driver.Value
	for _, c := range goldenCatalog[table] {
		if dialect == "postgres" {
			rows = append(rows, []driver.Value{c.name, c.pgType, "pg_catalog", c.pgTypmod})
		} else {
			rows = append(rows, []driver.Value{c.name, c.mysqlType, c.mysqlDigits})
		}
	}
	return rows
}
