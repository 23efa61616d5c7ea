// The rbe_edge Android library (AAR): the Java API in src/main/java and
// librbe_edge_jni.so, built by src/main/cpp/CMakeLists.txt from the
// repository's native/ sources for the ABIs below.
// NOTE: this file has not been built here, because the Android SDK and NDK
// are not installed; android/Makefile tests the same sources on the host JVM
// and under qemu.
plugins {
    id("com.android.library") version "8.5.2"
}

android {
    namespace = "dev.rbeedge"
    compileSdk = 34

    defaultConfig {
        // java.nio.file (Files.move with ATOMIC_MOVE) needs API level 26.
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
        ndk {
            abiFilters += listOf("arm64-v8a", "armeabi-v7a", "x86_64")
        }
        externalNativeBuild {
            cmake {
                arguments += listOf("-DANDROID_STL=none")
            }
        }
    }

    externalNativeBuild {
        cmake {
            path = file("src/main/cpp/CMakeLists.txt")
            version = "3.22.1"
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_1_8
        targetCompatibility = JavaVersion.VERSION_1_8
    }

    // The JUnit tests need the host JNI library and bundles packed by the
    // Python SDK, which android/Makefile provides; Gradle does not run them.
    sourceSets {
        getByName("test") {
            java.setSrcDirs(emptyList<String>())
        }
    }
}
