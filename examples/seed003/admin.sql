-- Seed 003's admin database: which companies need reports, and per table the query
-- that selects its rows and the statement that inserts them into the reports database.
-- params_select / params_insert name the values, in order, for the %s placeholders.
CREATE TABLE companies (
  id int(11) unsigned NOT NULL AUTO_INCREMENT,
  company_id int(11) DEFAULT NULL,
  status int(11) DEFAULT '0',
  alias varchar(60) DEFAULT NULL,
  PRIMARY KEY (id)
);
CREATE TABLE `tables` (
  id int(11) unsigned NOT NULL AUTO_INCREMENT,
  name varchar(255) DEFAULT '',
  status int(11) DEFAULT '0',
  query_select text,
  params_select text,
  query_insert text NOT NULL,
  params_insert text NOT NULL,
  PRIMARY KEY (id)
);
CREATE TABLE configurations (
  id int(11) unsigned NOT NULL AUTO_INCREMENT,
  name varchar(192) DEFAULT NULL,
  PRIMARY KEY (id)
);
CREATE TABLE companies_configurations (
  id int(11) unsigned NOT NULL AUTO_INCREMENT,
  retail_id int(11) DEFAULT NULL,
  configuration_id int(11) DEFAULT NULL,
  configuration_value text,
  PRIMARY KEY (id)
);
INSERT INTO companies (company_id, status, alias) VALUES (1, 1, 'acme'), (2, 1, 'globex'), (3, 0, 'initech');
INSERT INTO `tables` (name, status, query_select, params_select, query_insert, params_insert) VALUES
  ('users', 1,
   'SELECT id, username FROM users WHERE company = %s',
   '["company_id"]',
   'REPLACE INTO users (id, username) VALUES (%s, %s)',
   '["id", "username"]'),
  ('orders', 1,
   'SELECT id, user_id, total, ordered_at FROM orders WHERE company = %s AND ordered_at >= CURRENT_DATE - INTERVAL %s DAY',
   '["company_id", "days"]',
   'REPLACE INTO orders (id, user_id, total, ordered_at) VALUES (%s, %s, %s, %s)',
   '["id", "user_id", "total", "ordered_at"]');
INSERT INTO configurations (id, name) VALUES (1, 'date Y-M-D');
INSERT INTO companies_configurations (retail_id, configuration_id, configuration_value) VALUES (1, 1, '60'), (2, 1, '30');
