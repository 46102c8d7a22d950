-- One database per data service (as infrastructure/docker/postgres/init-databases.sh does for
-- compose). Runs once, when the volume is empty.
CREATE DATABASE cloudretail_users;
CREATE DATABASE cloudretail_products;
CREATE DATABASE cloudretail_orders;
CREATE DATABASE cloudretail_inventory;
CREATE DATABASE cloudretail_payments;
CREATE DATABASE cloudretail_events;
