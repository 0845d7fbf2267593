package optlock

import "gorm.io/gorm"

// checkWrittenValues refuses the values of a lock-aware update that the plugin would otherwise drop
// without a word, or could not honour. Nothing has been written when it runs.
func checkWrittenValues(stmt *gorm.Statement, spec *lockSpec) error {
	if values, ok := valuesMap(stmt.Dest); ok {
		return checkValuesMap(stmt, spec, values)
	}
	return nil
}

// valuesMap returns the map an update writes, given as a map or a pointer to one.
func valuesMap(dest any) (map[string]any, bool) {
	switch values := dest.(type) {
	case map[string]any:
		return values, true
	case *map[string]any:
		if values != nil {
			return *values, true
		}
	}
	return nil, false
}

// checkValuesMap rejects a values map that sets a lock field (to any value: a key is always a request
// to write it), or names something that is not a column of the model: GORM would put an unknown key
// into SET as a column name, and a lock-checked write builds no SQL from unchecked strings; a field
// GORM does not map (gorm:"-"), named by its Go name, it would only assign in memory, writing nothing.
func checkValuesMap(stmt *gorm.Statement, spec *lockSpec, values map[string]any) error {
	s := stmt.Schema
	for name := range values {
		if _, isRelation := s.Relationships.Relations[name]; isRelation {
			continue
		}
		f := s.LookUpField(name)
		switch {
		case f == nil:
			return invalidf("values name %q, which is not a field of model %s: leave it out, or name a column or field of the model", name, s.Name)
		case f.DBName == "":
			return invalidf("values name %q, a field of model %s that is no column (gorm:\"-\"), which GORM would not write: leave it out", name, s.Name)
		}
		for _, lf := range spec.locks {
			if f == lf.field {
				return invalidf("values set the lock field %q: leave it out, optlock advances it on every write", name)
			}
		}
	}
	return nil
}
