package optlock

import (
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// guardedTable is a guarded model's table, as writes that name it without the model find it.
type guardedTable struct {
	schema *schema.Schema
	fields []string // the guard's lock field names (none: the default)
	// qualifier is the schema (PostgreSQL) or database (MySQL) the model's TableName names, or "".
	qualifier string
}

// guardedTables maps each guarded model's bare table name to its guard.
type guardedTables map[string]guardedTable

// add records the table of a guarded model; the first guard of a table wins.
func (g guardedTables) add(s *schema.Schema, fields []string) {
	qualifier, table := splitQualified(s.Table)
	if _, taken := g[table]; !taken {
		g[table] = guardedTable{schema: s, fields: fields, qualifier: qualifier}
	}
}

// splitQualified splits "schema.table" into its parts ("", table when unqualified).
func splitQualified(name string) (qualifier, table string) {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}

// guardedTablesOf returns the guarded tables, as the latest Initialize registered them.
func (p *Plugin) guardedTablesOf() guardedTables {
	if g := p.guardTables.Load(); g != nil {
		return *g
	}
	return nil
}

// tableWrite returns the guard of the table the statement writes when the statement does not write
// it as the guarded model: no model at all, or a model of another type.
//
// A guard is keyed by its model's type, but GORM can write a guarded table without that type:
// db.Table("accounts").Where(...).Updates(map[string]any{...}) has no schema at all, and a second
// struct mapped to the same table (an AccountSummary whose TableName is "accounts") has a schema the
// guard does not know. Such a write carries no rows the caller read, so it is treated as a guarded
// model's write by a query: it advances the guard's lock on every row it touches, and values that set
// a lock column, or name no field of the guarded model, are refused. Raw SQL (db.Exec, db.Raw) is
// not a GORM write and bypasses every guard.
func (p *Plugin) tableWrite(stmt *gorm.Statement) (guardedTable, bool) {
	tables := p.guardedTablesOf()
	if len(tables) == 0 || stmt.Schema != nil && isGuarded(p, stmt) {
		return guardedTable{}, false
	}
	qualifier, table := writtenTable(stmt)
	t, ok := tables[table]
	if !ok || t.qualifier != "" && qualifier != "" && t.qualifier != qualifier {
		return guardedTable{}, false
	}
	return t, true
}

// writtenTable returns the table a statement writes, and its qualifier if it names one. GORM leaves
// the alias in Statement.Table when Table is given one (Table("accounts AS a")): the table is then the
// first word of Statement.TableExpr, unquoted.
func writtenTable(stmt *gorm.Statement) (qualifier, table string) {
	if e := stmt.TableExpr; e != nil && len(e.Vars) == 0 {
		if words := strings.Fields(e.SQL); len(words) > 0 {
			return splitQualified(strings.NewReplacer("`", "", `"`, "").Replace(words[0]))
		}
	}
	if stmt.Table != "" {
		return splitQualified(stmt.Table)
	}
	if stmt.Schema != nil {
		return splitQualified(stmt.Schema.Table)
	}
	return "", ""
}

// lockTarget is the statement the lock is resolved on: the statement itself, or for a write of a
// guarded table without its model, a statement that sees the table as the guarded model.
func (p *Plugin) lockTarget(stmt *gorm.Statement) *gorm.Statement {
	t, ok := p.tableWrite(stmt)
	if !ok {
		return stmt
	}
	qualifier, table := writtenTable(stmt)
	target := &gorm.Statement{
		DB: stmt.DB, ConnPool: stmt.ConnPool, Context: stmt.Context,
		Table: table, Schema: t.schema,
		Model: stmt.Model, Dest: stmt.Dest, ReflectValue: stmt.ReflectValue,
		Selects: stmt.Selects, Omits: stmt.Omits,
	}
	if qualifier != "" {
		// The catalog is read for the qualified table (columns.go's tableOf reads it from here).
		target.TableExpr = &clause.Expr{SQL: stmt.Quote(qualifier + "." + table)}
	}
	return target
}
