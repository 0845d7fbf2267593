package optlock

import "context"

// OnConflict calls fn once for every refused write, after nothing of it is left in the database and
// with the conflict's details filled in, so a service can count or log conflicts (and export a
// conflict rate). fn runs on the caller's goroutine, with the statement's context: keep it quick.
func OnConflict(fn func(ctx context.Context, err *OptimisticLockError)) Option {
	return func(p *Plugin) { p.onConflict = fn }
}

// WithBindVarLimit caps the bind parameters of one statement. A bulk write whose rows need more is
// split into several UPDATEs (and conflict queries) inside one transaction or savepoint, so it still
// writes all rows or none. The default is each database's own limit: 32 766 for SQLite, 65 535 for
// PostgreSQL and MySQL. Lower it if your server or driver is built with a smaller one.
// Rows bound as one JSON object (SQLite) or as arrays (PostgreSQL) take a fixed number of parameters,
// so those writes are never split.
func WithBindVarLimit(n int) Option {
	return func(p *Plugin) {
		if n > 0 {
			p.bindVarLimit = n
		}
	}
}

// bindVarLimitFor returns the number of bind parameters one statement may carry on dialect.
func (p *Plugin) bindVarLimitFor(dialect sqlDialect) int {
	if p.bindVarLimit > 0 {
		return p.bindVarLimit
	}
	return dialect.bindVarLimit()
}
