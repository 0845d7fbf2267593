package optlock

import "gorm.io/gorm"

// Setting keys the scope and UpdateSafely leave on a statement for the callbacks to read.
const (
	settingFields    = "optlock:fields"    // lockRequest from WithLock
	settingSafely    = "optlock:safely"    // lockRequest from UpdateSafely: lock with the default fields
	settingUnchecked = "optlock:unchecked" // lockRequest from Unchecked: advance, do not check
	settingEach      = "optlock:each"      // eachRequest from UpdateEach: per-row values
)

// lockRequest marks one statement as lock-checked. It names the statement it was made for: GORM copies
// a statement's settings into the statements it makes for associations (the upsert of a parent's
// children), which the caller never asked to check.
type lockRequest struct {
	stmt   *gorm.Statement
	fields []string
}

// WithLock marks a statement as lock-checked, for use with gorm.DB.Scopes. fields are column names
// ("version", "updated_at") or Go field names ("Version", "UpdatedAt") of the model; with no fields the
// model's version field is used if it has one, else its updated_at field. Fields are resolved against
// the model's schema when the statement runs, and a bad name fails the statement with an error that
// wraps [ErrInvalidLock]; a name is never put into SQL as given. The primary key and a soft delete's
// field (deleted_at) are never lock fields: advancing deleted_at would delete every row written.
//
// On an update the statement then writes only rows whose lock fields still hold the values in the
// model passed to Model, advances those fields (version+1, a newer updated_at) in the database and in
// the model, and fails with an [*OptimisticLockError] when a row changed since it was read:
//
//	db.Scopes(optlock.WithLock("version")).Model(&item).Updates(map[string]any{"qty": 3})
//
// The same holds for Update, UpdateColumn(s) and Save of one struct (a stale Save neither updates nor
// inserts), and for Delete of a struct or a slice, soft delete included. Save of a slice, an upsert,
// is refused. Statements without the scope, of models that are not guarded ([Guard]), are never changed
// by the plugin.
func WithLock(fields ...string) func(*gorm.DB) *gorm.DB {
	requested := append([]string(nil), fields...)
	return func(db *gorm.DB) *gorm.DB {
		if _, ok := db.Config.Plugins[pluginName]; !ok {
			_ = db.AddError(errNotRegistered)
			return db
		}
		tx := db.Set(settingFields, nil) // the instance whose statement runs
		tx.Statement.Settings.Store(settingFields, lockRequest{stmt: tx.Statement, fields: requested})
		return tx
	}
}

var errNotRegistered = invalidf("the optlock plugin is not registered on this *gorm.DB: call db.Use(optlock.New()) once after gorm.Open")
