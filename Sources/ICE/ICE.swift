// The ICE module.
