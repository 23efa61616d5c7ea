// Standalone build of the rbe_edge Android library. An app that includes
// this folder as a module (see README.md) uses its own settings instead.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "rbe-edge-android"
