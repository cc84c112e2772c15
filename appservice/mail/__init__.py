"""MSSanté / Medimail relay: mail to and from the dossiers' rooms, inside the appservice."""
