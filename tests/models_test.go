package tests

import "time"

// Tables carry a core_ prefix: other packages' tests use their own, so `go test ./...` can run
// packages in parallel against the same servers.

// Item is locked by an integer version.
type Item struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Qty     int
	Version int64
}

func (Item) TableName() string { return "core_items" }

// Doc is locked Django-style, by its updated_at timestamp.
type Doc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt time.Time
}

func (Doc) TableName() string { return "core_docs" }

// Note has both a version and an updated_at, to lock on either or both.
type Note struct {
	ID        uint `gorm:"primaryKey"`
	Body      string
	Version   uint
	UpdatedAt time.Time
}

func (Note) TableName() string { return "core_notes" }

// Tag has no lock field at all.
type Tag struct {
	ID   uint `gorm:"primaryKey"`
	Name string
}

func (Tag) TableName() string { return "core_tags" }

// Counter is what concurrent writers increment.
type Counter struct {
	ID      uint `gorm:"primaryKey"`
	Value   int
	Version int
}

func (Counter) TableName() string { return "core_counters" }
