package optlock

import (
	"regexp"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// sqlDialect is what differs between the databases the plugin writes SQL for. The rest of the
// plugin decides what a write needs (which rows, which lock values, whether it is split, undone or
// read back); a dialect writes how its database says it. One file per database implements it
// (dialect_postgres.go, dialect_mysql.go, dialect_sqlite.go), and dialects maps each to the
// gorm.Dialector name it serves.
type sqlDialect interface {
	// bindVarLimit is the number of bind parameters one statement may carry.
	bindVarLimit() int

	// quotedTable matches a table expression GORM made by quoting a name or schema.name (the
	// schema in the first group when there is one), or is nil.
	quotedTable() *regexp.Regexp
	// columnReader reads a table's column types from the catalog (storedColumns), or is nil when the
	// database is not asked.
	columnReader() func(stmt *gorm.Statement, pool gorm.ConnPool, key tableKey) (*tableColumns, error)

	// castType is the type a VALUES list casts a value of column f to, so the list has the column's
	// type (PostgreSQL), or "" when row values need none; columns are the types as stored.
	castType(stmt *gorm.Statement, f *schema.Field, columns *tableColumns) (string, error)
	// binaryCast is the cast a value of a binary column needs in every row of a derived table
	// (MySQL's BINARY), or "".
	binaryCast(stored storedColumn, f *schema.Field) string
	// timeLock sets how a timestamp lock column of type typeName with digits fractional digits (-1:
	// not known) is compared and cast, and returns the digits it is compared at.
	timeLock(lf *lockField, typeName string, digits int) int

	// instant is what a timestamp lock's column and value are wrapped in to be compared as instants
	// (SQLite's julianday( and )), or two empty strings.
	instant(lf lockField) (open, closing string)

	// keyListFirst says a list of rows is preceded by the plain list of their keys, which the
	// database needs to find the rows through the primary key (SQLite).
	keyListFirst() bool
	// locksInKeyOrder says a bulk write first locks its rows in primary-key order (PostgreSQL), with
	// writeKeyOrderLock, so two bulk writes over the same rows cannot deadlock.
	locksInKeyOrder() bool
	writeKeyOrderLock(b clause.Builder, p lockPredicate)
	// rowList is how a list of row values is written after IN.
	rowList() rowListForm
	// inlinesIntegers says a list of row values writes integer keys and lock values as literals
	// instead of binding them (MySQL: lockPredicate.integerLiterals).
	inlinesIntegers() bool
	// compactRows says the check predicate binds p's rows in a fixed number of parameters, whatever
	// their number (PostgreSQL's arrays, SQLite's JSON object); writeCompactRows writes it.
	compactRows(p lockPredicate) bool
	writeCompactRows(b clause.Builder, p lockPredicate)
	// joinRows is the FROM clause that joins p's rows in an UPDATE and the condition that matches
	// them (SQLite's JSON object), or nil: the rows are tested in WHERE.
	joinRows(p lockPredicate) (from clause.Interface, on clause.Expression)

	// buildEach writes UpdateEach's UPDATE of w's rows, each with its own values, joined to the
	// table by key and checked against their lock values (eachWrite's writers).
	buildEach(b clause.Builder, w eachWrite)

	// comparesInSQL says the conflict query over p's rows returns only the refused ones
	// (writeChangedRows writes it); otherwise every row's keys and lock columns are read back and
	// compared in Go.
	comparesInSQL(p lockPredicate) bool
	writeChangedRows(q *gorm.Statement, st *lockState, softDelete *schema.Field)
	// lockingRead is appended to the conflict query inside a transaction, so it reads what the
	// write saw (MySQL's LOCK IN SHARE MODE), or is empty.
	lockingRead() string
	// rowLocks says SELECT … FOR UPDATE locks the rows it reads until the transaction ends, so a
	// read can queue the other writers of its rows (RetryLockAfter; lock_reads.go). SQLite has no
	// such clause: a write transaction locks the whole database.
	rowLocks() bool

	// errorAbortsTx says a failed statement leaves the whole transaction aborted (PostgreSQL): a
	// statement that may fail inside the caller's transaction needs a savepoint of its own.
	errorAbortsTx() bool
	// savepoint, rollbackTo and release are the savepoint commands for a generated name.
	savepoint(name string) string
	rollbackTo(name string) string
	release(name string) string
	// isSerializationFailure reports whether e itself (not what it wraps) is the database's
	// serialization failure or deadlock, after which the transaction cannot go on.
	isSerializationFailure(e error) bool

	// advanceUnix is the blind advance of an integer Unix-time lock column col to at least next:
	// the larger of next and col + 1.
	advanceUnix(next int64, col clause.Column) clause.Expression
	// advanceTime is the blind advance of a timestamp lock column col: next, or col moved on by
	// lf.step when it already holds next or later.
	advanceTime(lf lockField, next time.Time, col clause.Column) clause.Expression
}

// rowListForm is how a dialect writes a list of row values after IN.
type rowListForm int

const (
	// rowValueList is (id, version) IN ((?, ?), (?, ?)).
	rowValueList rowListForm = iota
	// valuesList is (id, version) IN (VALUES (?, ?), (?, ?)).
	valuesList
	// typedValuesList is a VALUES list whose first row casts every value to its column's type.
	typedValuesList
)

// dialects are the databases the plugin writes SQL for, by gorm.Dialector name, in the order errors
// name them: the one place a name chooses a dialect. Adding a database is one file implementing
// sqlDialect and one line here.
var dialects = []struct {
	name    string
	dialect sqlDialect
}{
	{"mysql", mysqlDialect{}},
	{"postgres", postgresDialect{}},
	{"sqlite", sqliteDialect{}},
}

// dialectNamed returns the dialect registered under a gorm.Dialector name.
func dialectNamed(name string) (sqlDialect, bool) {
	for _, d := range dialects {
		if d.name == name {
			return d.dialect, true
		}
	}
	return nil, false
}

// standardSavepoints are the SQL standard's savepoint commands, which every supported database takes.
type standardSavepoints struct{}

func (standardSavepoints) savepoint(name string) string  { return "SAVEPOINT " + name }
func (standardSavepoints) rollbackTo(name string) string { return "ROLLBACK TO SAVEPOINT " + name }
func (standardSavepoints) release(name string) string    { return "RELEASE SAVEPOINT " + name }

// rowsTestedInWhere is the forms of a database whose bulk write tests its rows in WHERE, joining
// nothing, and whose conflict query reads every row back to be compared in Go.
type rowsTestedInWhere struct{}

// joinRows joins nothing: the rows are tested in WHERE.
func (rowsTestedInWhere) joinRows(lockPredicate) (clause.Interface, clause.Expression) {
	return nil, nil
}

// comparesInSQL is false: every row's key and lock columns are read back and compared in Go.
func (rowsTestedInWhere) comparesInSQL(lockPredicate) bool { return false }

// writeChangedRows is never called, as comparesInSQL is false.
func (rowsTestedInWhere) writeChangedRows(*gorm.Statement, *lockState, *schema.Field) {}
