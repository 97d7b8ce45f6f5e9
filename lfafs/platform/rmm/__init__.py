"""The Realm Management Monitor model: boot, low VA, glob_data, granules, RMI."""
