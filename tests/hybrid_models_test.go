package tests

// The hybrid tests' models (RetryLockAfter): tables prefixed hybrid_, so they run beside the others.

// HybridCounter is a hot row locked by its version.
type HybridCounter struct {
	ID      uint `gorm:"primaryKey"`
	Value   int
	Version int64
}

func (HybridCounter) TableName() string { return "hybrid_counters" }

// HybridSummary is another struct read from hybrid_counters: not the statement's model.
type HybridSummary struct {
	ID    uint
	Value int
}

// HybridPlain has no lock field: the plugin could never check a write of it.
type HybridPlain struct {
	ID  uint `gorm:"primaryKey"`
	Qty int
}

func (HybridPlain) TableName() string { return "hybrid_plains" }

// HybridRevised is locked by a field no default names: only WithLock (or a Guard) makes it known.
type HybridRevised struct {
	ID       uint `gorm:"primaryKey"`
	Qty      int
	Revision int64
}

func (HybridRevised) TableName() string { return "hybrid_reviseds" }

// HybridGuarded is guarded by its Revision field.
type HybridGuarded struct {
	ID       uint `gorm:"primaryKey"`
	Qty      int
	Revision int64
}

func (HybridGuarded) TableName() string { return "hybrid_guardeds" }

// HybridOrder has lines, each locked by its own version.
type HybridOrder struct {
	ID      uint `gorm:"primaryKey"`
	Version int64
	Lines   []HybridLine `gorm:"foreignKey:OrderID"`
}

func (HybridOrder) TableName() string { return "hybrid_orders" }

// HybridLine is a line of a HybridOrder.
type HybridLine struct {
	ID      uint `gorm:"primaryKey"`
	OrderID uint
	Qty     int
	Version int64
}

func (HybridLine) TableName() string { return "hybrid_lines" }

// hybridModels are every hybrid table.
var hybridModels = []any{&HybridCounter{}, &HybridPlain{}, &HybridRevised{}, &HybridGuarded{}, &HybridOrder{}, &HybridLine{}}
