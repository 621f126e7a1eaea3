"""Running services: the promotion controller, deploy targets, the stable address, audit."""
