-- A small sakila-like schema for the MariaDB round trip (tests/test_backup_mysql.py):
-- tables with enum/set/year/decimal/fulltext columns and foreign keys, views, triggers, a stored
-- function, a stored procedure and an event. Data from MariaDB's sequence engine (seq_1_to_N).

CREATE TABLE actor (
  actor_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  first_name VARCHAR(45) NOT NULL,
  last_name VARCHAR(45) NOT NULL,
  last_update TIMESTAMP NOT NULL DEFAULT '2020-01-01 00:00:00',
  PRIMARY KEY (actor_id),
  KEY idx_actor_last_name (last_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE category (
  category_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name VARCHAR(25) NOT NULL,
  PRIMARY KEY (category_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE film (
  film_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT,
  title VARCHAR(128) NOT NULL,
  description TEXT,
  release_year YEAR DEFAULT NULL,
  rental_rate DECIMAL(4,2) NOT NULL DEFAULT 4.99,
  length SMALLINT UNSIGNED DEFAULT NULL,
  rating ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',
  special_features SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),
  PRIMARY KEY (film_id),
  KEY idx_title (title)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE film_text (
  film_id SMALLINT UNSIGNED NOT NULL,
  title VARCHAR(255) NOT NULL,
  description TEXT,
  PRIMARY KEY (film_id),
  FULLTEXT KEY idx_title_description (title, description)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE film_actor (
  actor_id SMALLINT UNSIGNED NOT NULL,
  film_id SMALLINT UNSIGNED NOT NULL,
  PRIMARY KEY (actor_id, film_id),
  CONSTRAINT fk_film_actor_actor FOREIGN KEY (actor_id) REFERENCES actor (actor_id),
  CONSTRAINT fk_film_actor_film FOREIGN KEY (film_id) REFERENCES film (film_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE film_category (
  film_id SMALLINT UNSIGNED NOT NULL,
  category_id TINYINT UNSIGNED NOT NULL,
  PRIMARY KEY (film_id, category_id),
  CONSTRAINT fk_film_category_film FOREIGN KEY (film_id) REFERENCES film (film_id),
  CONSTRAINT fk_film_category_category FOREIGN KEY (category_id) REFERENCES category (category_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE payment (
  payment_id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  actor_id SMALLINT UNSIGNED NOT NULL,
  amount DECIMAL(5,2) NOT NULL,
  payment_date DATETIME NOT NULL,
  note BLOB,
  PRIMARY KEY (payment_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE payment_log (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT,
  payment_id INT UNSIGNED NOT NULL,
  logged DATETIME NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DELIMITER ;;
CREATE TRIGGER ins_film AFTER INSERT ON film FOR EACH ROW
BEGIN
  INSERT INTO film_text (film_id, title, description) VALUES (NEW.film_id, NEW.title, NEW.description);
END;;
CREATE TRIGGER upd_film AFTER UPDATE ON film FOR EACH ROW
BEGIN
  IF (OLD.title != NEW.title) OR (OLD.description != NEW.description) THEN
    UPDATE film_text SET title = NEW.title, description = NEW.description WHERE film_id = OLD.film_id;
  END IF;
END;;
CREATE TRIGGER del_film AFTER DELETE ON film FOR EACH ROW
BEGIN
  DELETE FROM film_text WHERE film_id = OLD.film_id;
END;;
CREATE TRIGGER payment_logged AFTER INSERT ON payment FOR EACH ROW
BEGIN
  INSERT INTO payment_log (payment_id, logged) VALUES (NEW.payment_id, NEW.payment_date);
END;;
CREATE FUNCTION films_in_category(p_category TINYINT UNSIGNED) RETURNS INT
READS SQL DATA
BEGIN
  DECLARE n INT;
  SELECT COUNT(*) INTO n FROM film_category WHERE category_id = p_category;
  RETURN n;
END;;
CREATE PROCEDURE actor_payments(IN p_actor SMALLINT UNSIGNED, OUT p_total DECIMAL(10,2))
READS SQL DATA
BEGIN
  SELECT COALESCE(SUM(amount), 0) INTO p_total FROM payment WHERE actor_id = p_actor;
END;;
CREATE EVENT purge_payment_log ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00'
ON COMPLETION PRESERVE DISABLE
COMMENT 'keeps 90 days of payment_log'
DO DELETE FROM payment_log WHERE logged < NOW() - INTERVAL 90 DAY;;
DELIMITER ;

CREATE VIEW actor_info AS
  SELECT a.actor_id, a.first_name, a.last_name, COUNT(fa.film_id) AS films
  FROM actor a LEFT JOIN film_actor fa ON fa.actor_id = a.actor_id
  GROUP BY a.actor_id, a.first_name, a.last_name;
CREATE VIEW film_list AS
  SELECT f.film_id, f.title, c.name AS category, f.rental_rate, f.rating
  FROM film f JOIN film_category fc ON fc.film_id = f.film_id
  JOIN category c ON c.category_id = fc.category_id;

INSERT INTO category (name) SELECT CONCAT('Category ', seq) FROM seq_1_to_16;
INSERT INTO actor (first_name, last_name)
  SELECT CONCAT('First', seq), CONCAT('Last \'', seq % 37, '" é') FROM seq_1_to_200;
INSERT INTO film (title, description, release_year, rental_rate, length, rating, special_features)
  SELECT CONCAT('FILM ', seq), IF(seq % 9 = 0, NULL, CONCAT('A story\nin two lines ', seq)),
         2000 + seq % 20, 0.99 + (seq % 5), 60 + seq % 120,
         ELT(1 + seq % 5, 'G', 'PG', 'PG-13', 'R', 'NC-17'),
         IF(seq % 3 = 0, 'Trailers,Deleted Scenes', 'Commentaries')
  FROM seq_1_to_1000;
INSERT INTO film_actor (actor_id, film_id) SELECT 1 + seq % 200, 1 + seq % 1000 FROM seq_1_to_5000
  ON DUPLICATE KEY UPDATE actor_id = actor_id;
INSERT INTO film_category (film_id, category_id) SELECT seq, 1 + seq % 16 FROM seq_1_to_1000;
INSERT INTO payment (actor_id, amount, payment_date, note)
  SELECT 1 + seq % 200, (seq % 1000) / 100, '2026-01-01' + INTERVAL seq MINUTE, UNHEX(MD5(seq))
  FROM seq_1_to_8000;
