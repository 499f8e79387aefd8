DROP TABLE queue_openings;
