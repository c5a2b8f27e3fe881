# Install rules and an exported CMake package: find_package(aec) then link aec::aec.
include(CMakePackageConfigHelpers)

# Exported as aec::aec (the library users link), aec::base, aec::store_memory, aec::store_sqlite,
# aec::store_http (with aec::store_http_plain), aec::store_postgres, aec::store_etcd (with aec::etcd_client and
# aec::etcd_proto), aec::store_dynamodb and aec::api (static libraries aec_core links privately, so their consumers
# link them too).
set_target_properties(aec_core PROPERTIES EXPORT_NAME aec)
set_target_properties(aec_base PROPERTIES EXPORT_NAME base)
set_target_properties(aec_store_memory PROPERTIES EXPORT_NAME store_memory)
set_target_properties(aec_store_sqlite PROPERTIES EXPORT_NAME store_sqlite)
set_target_properties(aec_store_http PROPERTIES EXPORT_NAME store_http)
set_target_properties(aec_store_http_plain PROPERTIES EXPORT_NAME store_http_plain)
set_target_properties(aec_store_postgres PROPERTIES EXPORT_NAME store_postgres)
set_target_properties(aec_store_etcd PROPERTIES EXPORT_NAME store_etcd)
set_target_properties(aec_store_dynamodb PROPERTIES EXPORT_NAME store_dynamodb)
set_target_properties(aec_etcd_client PROPERTIES EXPORT_NAME etcd_client)
set_target_properties(aec_etcd_proto PROPERTIES EXPORT_NAME etcd_proto)
set_target_properties(aec_api PROPERTIES EXPORT_NAME api)

install(DIRECTORY include/aec DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS aec_base aec_core aec_store_memory aec_store_sqlite aec_store_http
                aec_store_http_plain
                aec_store_postgres aec_store_etcd aec_store_dynamodb aec_etcd_client aec_etcd_proto
                aec_api
        EXPORT aecTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET aec)
  install(TARGETS aec aecd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  # The light `aec` becomes aec-full for the network stores and `aec serve` (src/cli/light_main.cc).
  install(TARGETS aec-full RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/aec)
endif()
install(EXPORT aecTargets NAMESPACE aec:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aec)

configure_package_config_file(cmake/aecConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/aecConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aec)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/aecConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/aecConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/aecConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/aec)
