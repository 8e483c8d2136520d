-- Seed 000's taxi database in PostgreSQL: trips (filled from the DynamoDB stream),
-- billing and payment, and billingandpayments(), which bills the completed trips per
-- driver in a new billing cycle, pays the drivers and marks both as Processed.
CREATE TABLE trips (
  id serial PRIMARY KEY,
  rider_id integer, driver_id integer,
  rider_name text, rider_mobile text, rider_email text,
  trip_info text NOT NULL UNIQUE,
  driver_name text, driver_email text, driver_mobile text,
  vehicle_id text, cab_type_id integer, vendor_id integer,
  pickup_datetime timestamp, dropoff_datetime timestamp,
  store_and_fwd_flag text, rate_code_id integer,
  pickup_longitude numeric, pickup_latitude numeric,
  dropoff_longitude numeric, dropoff_latitude numeric,
  passenger_count integer, trip_distance numeric,
  fare_amount numeric(10,2), extra numeric(10,2), mta_tax numeric(10,2),
  tip_amount numeric(10,2), tolls_amount numeric(10,2), ehail_fee numeric(10,2),
  improvement_surcharge numeric(10,2), total_amount numeric(10,2),
  payment_type integer, trip_type integer,
  pickup_location_id integer DEFAULT 0, dropoff_location_id integer DEFAULT 0,
  status text
);
ALTER SEQUENCE trips_id_seq RESTART WITH 2000001;
CREATE TABLE billing (
  id serial PRIMARY KEY,
  driver_id integer NOT NULL,
  billing_cycle integer NOT NULL,
  billing_start timestamp, billing_end timestamp, billing_date timestamp,
  billing_amount numeric(12,6), commissions numeric(8,6),
  description text, rides_total integer, billing_status text
);
ALTER SEQUENCE billing_id_seq RESTART WITH 200001;
CREATE TABLE payment (
  id serial PRIMARY KEY,
  billing_cycle integer NOT NULL,
  driver_id integer NOT NULL,
  payment_amount numeric(12,6),
  payment_date timestamp,
  payment_status text
);
CREATE PROCEDURE billingandpayments() LANGUAGE plpgsql AS $$
DECLARE
  found_trips integer;
  cycle integer;
  done integer;
BEGIN
  SELECT count(*) INTO found_trips FROM trips WHERE status = 'Completed';
  RAISE NOTICE 'Found % trip(s) record to be processed for billing', found_trips;
  IF found_trips = 0 THEN
    RETURN;
  END IF;
  SELECT COALESCE(max(billing_cycle), 0) + 1 INTO cycle FROM billing;
  RAISE NOTICE 'Running Billing Cycle # %', cycle;
  INSERT INTO billing (driver_id, billing_cycle, billing_start, billing_end, billing_date,
                       billing_amount, commissions, description, rides_total, billing_status)
  SELECT driver_id, cycle, date_trunc('day', min(pickup_datetime)),
         date_trunc('day', max(dropoff_datetime)) + interval '1 day', now(),
         sum(total_amount), 0.8, 'billing cycle ' || cycle, count(*), 'Pending'
    FROM trips WHERE status = 'Completed' GROUP BY driver_id;
  GET DIAGNOSTICS done = ROW_COUNT;
  RAISE NOTICE 'Inserted % record(s) into billing table', done;
  INSERT INTO payment (billing_cycle, driver_id, payment_amount, payment_date, payment_status)
  SELECT billing_cycle, driver_id, billing_amount * commissions, now(), 'Completed'
    FROM billing WHERE billing_cycle = cycle;
  GET DIAGNOSTICS done = ROW_COUNT;
  RAISE NOTICE 'Inserted % record(s) into payment table', done;
  UPDATE trips SET status = 'Processed' WHERE status = 'Completed';
  GET DIAGNOSTICS done = ROW_COUNT;
  RAISE NOTICE 'Updated % record(s) in trips table and marked status as Processed', done;
  UPDATE billing SET billing_status = 'Processed' WHERE billing_cycle = cycle;
  GET DIAGNOSTICS done = ROW_COUNT;
  RAISE NOTICE 'Updated % record(s) in billing table and marked status as Processed', done;
  RAISE NOTICE 'Billing Cycle # % Completed Successfully', cycle;
END;
$$;
