-- RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the addresses a client
-- registered for the browser to return to after signing out, as a JSON array. A logout
-- request is redirected only to one of these, character for character.
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
