package optlock

import (
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// upsertKey stores, per statement, the ON CONFLICT clause as the caller gave it, to be put back once
// the create has run: a *gorm.DB kept and reused must not carry the advance into the next call.
type upsertKey struct{ stmt *gorm.Statement }

// guardUpsert refuses or completes an upsert before gorm:create builds it.
//
// An upsert (INSERT ... ON CONFLICT DO UPDATE, MySQL's ON DUPLICATE KEY UPDATE) overwrites a row it
// never read, so no lock can check it. A lock-checked one is refused. For a guarded model, one that
// would set every column or a lock column is refused; one that updates named columns (an
// AssignmentColumns or Assignments DoUpdates, and GORM's own upsert of associated rows, which sets
// their foreign key) advances the lock of the row it overwrites, as a write without read rows does,
// so no holder of an older read can write over it.
func (p *Plugin) guardUpsert(db *gorm.DB) {
	if db.Error != nil {
		return
	}
	stmt := db.Statement
	c, ok := stmt.Clauses["ON CONFLICT"]
	conflict, isUpsert := c.Expression.(clause.OnConflict)
	if !ok || !isUpsert || !conflict.UpdateAll && len(conflict.DoUpdates) == 0 {
		return
	}
	if _, explicit := requested(db); explicit {
		_ = db.AddError(invalidf("Save of a slice is an upsert, which cannot be lock-checked: write the rows with optlock.UpdateSafely, or Save them one at a time"))
		return
	}
	target, names, guarded := p.guardOf(stmt)
	if target.Schema == nil || !guarded {
		return
	}
	spec, err := p.lockSpec(target, names)
	if err != nil {
		_ = db.AddError(err)
		return
	}
	setsLock := conflict.UpdateAll
	for _, a := range conflict.DoUpdates {
		for _, lf := range spec.locks {
			setsLock = setsLock || a.Column.Name == lf.field.DBName || a.Column.Name == lf.field.Name
		}
	}
	if setsLock {
		_ = db.AddError(invalidf("an upsert (Save of a slice, or ON CONFLICT DO UPDATE of every column or of a lock column) of guarded model %s would overwrite rows unchecked: write the rows with optlock.UpdateSafely or optlock.UpdateEach, or Save them one at a time", target.Schema.Name))
		return
	}
	stmt.Settings.Store(upsertKey{stmt}, c)
	updates := append(clause.Set(nil), conflict.DoUpdates...)
	now := db.NowFunc()
	for _, lf := range spec.locks {
		updates = append(updates, clause.Assignment{Column: clause.Column{Name: lf.field.DBName}, Value: lf.advanceBlind(spec.dialect, stmt.Table, now)})
	}
	conflict.DoUpdates = updates
	c.Expression = conflict
	stmt.Clauses["ON CONFLICT"] = c
}

// restoreUpsert puts back the ON CONFLICT clause guardUpsert completed.
func restoreUpsert(db *gorm.DB) {
	key := upsertKey{db.Statement}
	if c, ok := db.Statement.Settings.LoadAndDelete(key); ok {
		db.Statement.Clauses["ON CONFLICT"] = c.(clause.Clause)
	}
}
