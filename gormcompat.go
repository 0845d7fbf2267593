package optlock

import (
	"reflect"
	"strconv"

	"gorm.io/gorm"
)

// What the plugin relies on in GORM beyond its documented API, in one place: each has a test in
// gormcompat_test.go that fails if a GORM upgrade changes it. The plugin is built and tested against
// the GORM version in go.mod.
//
//   - Callback names: the plugin places its callbacks by GORM's own (gorm:setup_reflect_value,
//     gorm:before_update, gorm:save_before_associations, gorm:update, gorm:save_after_associations,
//     gorm:after_update, gorm:before_delete, gorm:delete_before_associations, gorm:delete,
//     gorm:after_delete, gorm:create, gorm:after_create), and by gormBeginTransaction and
//     gormCommitOrRollback, which gorm.Config.SkipDefaultTransaction leaves unregistered.
//   - gormStartedTransaction: the instance key with which GORM's begin_transaction tells that it
//     opened the transaction the statement runs in (not the caller); InstanceSet stores it in
//     Statement.Settings under the statement's address formatted with %p, then the key
//     (gormStartedTx reads it there).
//   - softDeleteMark and officialLockMark: the clause names with which GORM's soft delete and
//     gorm.io/plugin/optimisticlock mark a statement they have handled.
//   - gorm:update refuses a statement without a WHERE clause (ErrMissingWhereClause), whatever its SQL
//     says: UpdateEach, whose WHERE is in its own SQL, adds "1 = 1" as the clause.
//   - DB.AddError joins a second error as fmt.Errorf("%v; %w"): the first is flattened into text
//     (causes.go rebuilds both).
//   - callbacks.ConvertToAssignments reads the row from Statement.ReflectValue, which the plugin swaps
//     for the first row of a slice.
//   - Save falls back to an insert when its update matched no row and no error was added: a conflict
//     must be an error inside the update chain.
//   - An association's Append upserts the child with ON CONFLICT DO UPDATE of its foreign key columns
//     only (upsert.go advances the child's lock there).
//   - Table("schema.table") leaves the bare table name in Statement.Table, Table("table AS alias")
//     the alias; Statement.TableExpr keeps what was given (guard_tables.go reads both).
//   - With PrepareStmt, Statement.ConnPool is a *gorm.PreparedStmtDB, and a *gorm.PreparedStmtTX in a
//     transaction (binding.go and columns.go unwrap them).
const (
	gormBeginTransaction   = "gorm:begin_transaction"
	gormCommitOrRollback   = "gorm:commit_or_rollback_transaction"
	gormStartedTransaction = "gorm:started_transaction"
)

// softDeleteMark is the clause name with which GORM's soft delete marks a statement whose WHERE it has
// already given "deleted_at IS NULL": left on a reused statement, the next write would skip rows
// deleted in between no more.
const softDeleteMark = "soft_delete_enabled"

// officialLockMark is the clause name with which gorm.io/plugin/optimisticlock's Version type marks a
// statement it has already handled. The plugin sets it on the statements it handles, so a model with
// that type, guarded or lock-checked here, is not checked twice (the type's own check would compare
// the already advanced version and refuse every write).
const officialLockMark = "version_enabled"

// gormStartedTx reports whether GORM's begin_transaction opened the transaction stmt runs in: what
// stmt.DB.InstanceGet(gormStartedTransaction) reports, without the two allocations InstanceGet makes
// formatting its key on every call. The key, fmt.Sprintf("%p", stmt) + gormStartedTransaction, is
// written into a buffer on the stack and looked for among the statement's few settings.
func gormStartedTx(stmt *gorm.Statement) bool {
	var buf [64]byte
	key := append(buf[:0], "0x"...)
	key = strconv.AppendUint(key, uint64(reflect.ValueOf(stmt).Pointer()), 16)
	key = append(key, gormStartedTransaction...)
	found := false
	stmt.Settings.Range(func(k, _ any) bool {
		s, ok := k.(string)
		found = ok && s == string(key)
		return !found
	})
	return found
}
