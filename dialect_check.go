package optlock

import "strings"

// supportedDialects are the gorm.Dialector names the plugin writes SQL for (the dialects registry),
// each tested on a real server (PostgreSQL 15, MariaDB 10.11, SQLite). Every form the plugin builds
// is chosen by one of these names: any other dialect would silently get another database's SQL
// (MySQL's row-value IN, SQLite's VALUES form), so it is refused when the plugin is registered.
// Databases that speak one of these dialects and call themselves by its name (CockroachDB and
// YugabyteDB through the postgres driver, TiDB through mysql) get that dialect's forms, untested.
func supportedDialects() []string {
	names := make([]string, len(dialects))
	for i, d := range dialects {
		names[i] = d.name
	}
	return names
}

// checkDialect refuses a dialector the plugin has no SQL for.
func checkDialect(name string) error {
	if _, ok := dialectNamed(name); ok {
		return nil
	}
	return invalidf("optlock does not support the GORM dialect %q: it writes SQL for %s only (register it only on a *gorm.DB of those)", name, strings.Join(supportedDialects(), ", "))
}
