package optlock

import (
	"slices"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// eachColumns returns the columns UpdateEach writes: names (column or Go field names) if given, else
// the default, either one narrowed by the statement's Select and Omit.
//
// UpdateEach writes what GORM's Save would write under the statement's Select and Omit: a caller who
// read some columns (Select("id", "qty", "version")) or left some out (Omit("note")) writes back only
// the others, and the rest of each row keeps what is stored instead of the zero values the structs
// hold. The rules are GORM's own, read through [gorm.Statement.SelectAndOmitColumns]; what is added
// here is what a checked write of many rows needs:
//
//   - The primary key and the lock fields are never written from the structs, whatever Select or Omit
//     name: the key matches the rows, and the lock is checked and advanced, as Save under a lock does.
//     Naming them is not an error: the read's own Select names them.
//   - created_at and deleted_at are written only when Select names them: "*", like no Select at all,
//     means UpdateEach's default.
//   - A name in Select or Omit that is no column, field or association of the model is refused: GORM
//     ignores it, and a typo in Omit would overwrite the very column the caller meant to keep.
func eachColumns(stmt *gorm.Statement, spec *lockSpec, names []string) ([]*schema.Field, error) {
	s := stmt.Schema
	selected, restricted := stmt.SelectAndOmitColumns(false, true)
	if err := unknownSelectOrOmit(s, selected); err != nil {
		return nil, err
	}
	// written applies Select and Omit to a column: named is whether either (or "*") names it, v
	// whether to write it. Without a Select naming it, a column is written unless the Select is
	// restricted, but autoUpdateTime columns are written even then, unless omitted, as Save writes them.
	written := func(f *schema.Field, explicit bool) bool {
		v, named := selected[f.DBName]
		switch {
		case named:
			return v
		case restricted:
			return !explicit && f.AutoUpdateTime > 0 && f.Updatable
		}
		return true
	}
	isLockOrKey := func(f *schema.Field) bool {
		return f.PrimaryKey || slices.ContainsFunc(spec.locks, func(lf lockField) bool { return lf.field == f })
	}

	var fields []*schema.Field
	if len(names) == 0 {
		for _, f := range s.Fields {
			if f.DBName == "" || !f.Updatable || isLockOrKey(f) || !written(f, false) {
				continue
			}
			if !restricted && (f.AutoCreateTime > 0 || f.FieldType == deletedAtType) {
				continue // written only when Select names it
			}
			fields = append(fields, f)
		}
		if len(fields) == 0 {
			if len(stmt.Selects)+len(stmt.Omits) > 0 {
				return nil, invalidf("UpdateEach: Select and Omit leave no column of model %s to write besides its keys and lock fields", s.Name)
			}
			return nil, invalidf("UpdateEach: model %s has no column to write besides its keys and lock fields", s.Name)
		}
		return fields, nil
	}

	seen := map[*schema.Field]bool{}
	for _, name := range names {
		if !validFieldName.MatchString(name) {
			return nil, invalidf("malformed column name %q for UpdateEach: use a column or Go field name", name)
		}
		f := s.LookUpField(name)
		switch {
		case f == nil || f.DBName == "":
			return nil, invalidf("UpdateEach: model %s has no column or field %q", s.Name, name)
		case isLockOrKey(f):
			return nil, invalidf("UpdateEach: %q is a primary key or lock column: leave it out, optlock matches rows by key and advances the lock itself", name)
		case !f.Updatable:
			return nil, invalidf("UpdateEach: column %q of model %s is not updatable", name, s.Name)
		case seen[f]:
			return nil, invalidf("UpdateEach: column %q named twice", name)
		}
		seen[f] = true
		if written(f, true) {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return nil, invalidf("UpdateEach: Select and Omit leave none of the columns %q to write", names)
	}
	return fields, nil
}

// unknownSelectOrOmit refuses a name in Select or Omit that GORM resolved to no column, field or
// association of the model: SelectAndOmitColumns keeps such a name as it was given.
func unknownSelectOrOmit(s *schema.Schema, selected map[string]bool) error {
	var unknown []string
	for name := range selected {
		if s.FieldsByDBName[name] != nil || s.FieldsByName[name] != nil || s.Relationships.Relations[name] != nil {
			continue
		}
		unknown = append(unknown, name)
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return invalidf("UpdateEach: Select or Omit names %q, not a column, field or association of model %s: name columns or Go fields, one per argument", unknown, s.Name)
}
