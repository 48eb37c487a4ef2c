#pragma once
// The store's schema as an ordered list of migrations (internal to persistence/).
#include <cstddef>

namespace mts::schema {

// migrations()[i] brings the schema from version i to version i + 1. Each entry is one or more
// SQL statements; the store runs each in its own BEGIN IMMEDIATE transaction together with the
// schema_migrations row that records it. Never edit a released migration: append a new one.
const char* const* migrations();
std::size_t migration_count();

// Created before any migration runs (it records which migrations ran).
extern const char* const bootstrap_sql;

} // namespace mts::schema
